import { execFile } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readdirSync, readFileSync, renameSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './run-action';

const exec = promisify(execFile);

/** The example app: the Flask digits classifier and its training script. */
export const APP_DIR = path.join(REPO_ROOT, 'examples/image-classifier');
export const MODEL_FILE = 'digits.npz';
export const LABELS_FILE = 'labels.txt';
const CACHE_DIR = path.join(REPO_ROOT, '.local', 'model-cache');
/** What training reads: a change to any of them trains again. */
const TRAINING_INPUTS = ['train.py', 'classifier/features.py', 'classifier/model.py'];

export interface TrainOptions {
  /** The network's random seed: another seed is the same model "retrained the same way". */
  seed?: number;
  /** Train on shuffled labels: a model that starts fine and answers wrongly. */
  shuffleLabels?: boolean;
  /** Training iterations at most (the broken model needs few). */
  maxIter?: number;
}

/**
 * A trained example model (digits.npz + labels.txt): from .local/model-cache/<key> when
 * train.py, the code it imports and the options are unchanged, otherwise trained now with
 * Debian's scikit-learn (/usr/bin/python3, a few seconds) and kept there.
 */
export async function trainedModel(
  options: TrainOptions = {},
  log: (line: string) => void = () => undefined,
): Promise<{ dir: string; reused: boolean; key: string }> {
  const args = [
    ...(options.seed !== undefined ? ['--seed', String(options.seed)] : []),
    ...(options.shuffleLabels ? ['--shuffle-labels', '--min-accuracy', '0'] : []),
    ...(options.maxIter !== undefined ? ['--max-iter', String(options.maxIter)] : []),
  ];
  const hash = createHash('sha256');
  for (const name of TRAINING_INPUTS)
    hash.update(`${name}\n`).update(readFileSync(path.join(APP_DIR, name)));
  hash.update(`args ${args.join(' ')}`);
  const key = hash.digest('hex').slice(0, 16);
  const dir = path.join(CACHE_DIR, key);
  log(`Cache key (sha256 of ${TRAINING_INPUTS.join(', ')} and the options): ${key}`);
  if (existsSync(path.join(dir, MODEL_FILE)) && existsSync(path.join(dir, LABELS_FILE))) {
    return { dir, reused: true, key };
  }
  const partial = `${dir}.partial-${process.pid}`;
  rmSync(partial, { recursive: true, force: true });
  mkdirSync(CACHE_DIR, { recursive: true });
  const { stdout, stderr } = await exec(
    '/usr/bin/python3',
    [path.join(APP_DIR, 'train.py'), '--output', partial, ...args],
    { cwd: APP_DIR, maxBuffer: 16 * 1024 * 1024 },
  ).catch((error: { stdout?: string; stderr?: string; message: string }) => {
    rmSync(partial, { recursive: true, force: true });
    throw new Error(`train.py failed: ${error.stderr || error.stdout || error.message}`);
  });
  log((stdout + stderr).trim().replace(/^/gm, '  '));
  rmSync(dir, { recursive: true, force: true });
  renameSync(partial, dir);
  return { dir, reused: false, key };
}

/**
 * build-push's `model-files` for a model trained here (no blob store, so no fetch-model state):
 * each file of `dir` with the sha256 and size it has now, in the shape of fetch-model's `files`
 * output, so build-push ships exactly these bytes.
 */
export function modelFilesOf(dir: string): string {
  const files = readdirSync(dir, { withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => {
      const bytes = readFileSync(path.join(dir, entry.name));
      return {
        name: entry.name,
        path: path.join(dir, entry.name),
        sha256: createHash('sha256').update(bytes).digest('hex'),
        size: bytes.length,
      };
    });
  return JSON.stringify(files);
}
