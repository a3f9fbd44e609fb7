import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  existsSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import * as path from 'node:path';
import type { FaultProxy, ProxiedRequest } from './fault-proxy';
import { LOCK_FILE } from '../../src/common/model';
import { errorLines, type ActionRun } from './run-action';

/**
 * Scenarios that fetch-model must pass against every provider (Azure Blob, S3): each test file
 * supplies its own `fetch` (the bundle run against its store) and asserts the same behaviour.
 */

/** Every entry under `dir`, hidden partial files included, relative and sorted. */
export function entries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

/** A blob of the test store and its bytes. */
export interface StoredBlob {
  name: string;
  bytes: Buffer;
}

/**
 * The two kinds of blob the re-run rules tell apart: one the service keeps a digest for (a
 * single-shot upload: Azure's Content-MD5, S3's ETag), and one it keeps none for (a staged or
 * multipart upload).
 */
export interface RerunBlobs {
  vouched: StoredBlob;
  unvouched: StoredBlob;
}

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Reads the state file fetch-model keeps in `dir`. */
function readState(dir: string): { version: 1; files: Record<string, Record<string, unknown>> } {
  return JSON.parse(readFileSync(path.join(dir, LOCK_FILE), 'utf8'));
}

/**
 * Fetches both blobs twice, pinning the unvouched one with `sha256`: the second run downloads
 * nothing (each file re-hashed and matched); after a file is damaged, the third run repairs it.
 */
export async function expectRerunSkipsAndRepairs(
  fetch: (inputs: Record<string, string>) => Promise<ActionRun>,
  workspace: string,
  { vouched, unvouched }: RerunBlobs,
): Promise<void> {
  const inputs = {
    blobs: `${unvouched.name}, ${vouched.name}`,
    sha256: `${unvouched.name}=${sha256(unvouched.bytes)}`,
  };
  const first = await fetch(inputs);
  expect(errorLines(first)).toEqual([]);
  expect(first.exitCode).toBe(0);
  const second = await fetch(inputs);
  expect(second.exitCode).toBe(0);
  expect(second.outputs['cache-hit']).toBe('true');
  expect(second.outputs['model-digest']).toBe(first.outputs['model-digest']);
  expect(second.summary).toContain('nothing was downloaded');
  expect(second.stdout).toMatch(
    new RegExp(
      `^${escape(unvouched.name)}: already in place, its bytes match the 'sha256' input \\(re-hashed`,
      'm',
    ),
  );
  expect(second.stdout).toMatch(
    new RegExp(
      `^${escape(vouched.name)}: already in place, its bytes match the (Content-MD5|ETag \\(MD5\\)) the service stores`,
      'm',
    ),
  );
  expect(second.summary).toContain("kept: its bytes match the 'sha256' input");

  const damaged = path.join(workspace, 'model', vouched.name);
  writeFileSync(damaged, 'tampered');
  const third = await fetch(inputs);
  expect(third.exitCode).toBe(0);
  expect(third.outputs['cache-hit']).toBe('false');
  expect(readFileSync(damaged).equals(vouched.bytes)).toBe(true);
  expect(third.stdout).toContain(`${vouched.name}: downloading again: the local file has 8 bytes`);
}

/** A file nothing outside the cache vouches for is downloaded again, and the log says why. */
export async function expectUnvouchedFileDownloadedAgain(
  fetch: (inputs: Record<string, string>) => Promise<ActionRun>,
  { unvouched }: RerunBlobs,
): Promise<void> {
  const first = await fetch({ blobs: unvouched.name });
  expect(first.exitCode).toBe(0);
  const second = await fetch({ blobs: unvouched.name });
  expect(errorLines(second)).toEqual([]);
  expect(second.exitCode).toBe(0);
  expect(second.outputs['cache-hit']).toBe('false');
  expect(second.stdout).toContain(
    `${unvouched.name}: downloading again: no digest from outside the cache vouches for the ` +
      `local file (no 'sha256' input, and the service stores no MD5 or SHA-256 for it)`,
  );
  expect(second.summary).toContain('downloaded (again: no digest from outside the cache');
}

/** How a poisoned cache entry disguises replaced bytes. */
export type Forgery = 'same size and mtime' | 'bytes and lock forged together';

/**
 * A destination restored from a poisoned cache: the file's bytes are replaced (same size), and
 * either its mtime is set back to what the state file recorded, or the state file is rewritten
 * to describe the forged bytes. With the file vouched for by `anchor` (the digest the service
 * stores, or the `sha256` input), the forged bytes are never reported or kept: the file is
 * downloaded again.
 */
export async function expectPoisonedCacheRejected(
  fetch: (inputs: Record<string, string>) => Promise<ActionRun>,
  workspace: string,
  blobs: RerunBlobs,
  anchor: 'stored digest' | 'sha256 input',
  forgery: Forgery,
): Promise<void> {
  const blob = anchor === 'stored digest' ? blobs.vouched : blobs.unvouched;
  const inputs: Record<string, string> = { blobs: blob.name };
  if (anchor === 'sha256 input') inputs.sha256 = `${blob.name}=${sha256(blob.bytes)}`;
  const first = await fetch(inputs);
  expect(first.exitCode).toBe(0);

  const dir = path.join(workspace, 'model');
  const file = path.join(dir, blob.name);
  const before = statSync(file, { bigint: true });
  const forged = Buffer.from(blob.bytes);
  forged[0] ^= 0xff;
  forged[forged.length - 1] ^= 0xff;
  writeFileSync(file, forged);
  if (forgery === 'same size and mtime') {
    // Set back to the nanosecond (touch takes what utimes' doubles would round).
    const ns = before.mtimeNs;
    execFileSync('touch', [
      '-m',
      '-d',
      `@${ns / 10n ** 9n}.${String(ns % 10n ** 9n).padStart(9, '0')}`,
      file,
    ]);
    expect(statSync(file).mtimeMs).toBe(readState(dir).files[blob.name].mtimeMs);
  } else {
    const state = readState(dir);
    state.files[blob.name] = {
      ...state.files[blob.name],
      sha256: sha256(forged),
      size: forged.length,
      mtimeMs: statSync(file).mtimeMs,
    };
    writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(state));
  }

  const second = await fetch(inputs);
  expect(errorLines(second)).toEqual([]);
  expect(second.exitCode).toBe(0);
  expect(second.outputs['cache-hit']).toBe('false');
  const described =
    anchor === 'sha256 input'
      ? "the 'sha256' input"
      : 'the (Content-MD5|ETag \\(MD5\\)) the service stores';
  expect(second.stdout).toMatch(
    new RegExp(
      `^${escape(blob.name)}: downloading again: the local file's bytes do not match ${described}`,
      'm',
    ),
  );
  expect(readFileSync(file).equals(blob.bytes)).toBe(true);
  expect(JSON.parse(second.outputs.files)[0].sha256).toBe(sha256(blob.bytes));
  expect(second.outputs['model-digest']).toBe(first.outputs['model-digest']);
  expect(readState(dir).files[blob.name].sha256).toBe(sha256(blob.bytes));
}

/**
 * Whatever else is in the destination (a stray file, a folder, a partial file of a killed run)
 * is removed and listed in the summary; a directory fetch-model never wrote into is left alone
 * and the step fails, naming its files.
 */
export async function expectExtraFilesRemoved(
  fetch: (inputs: Record<string, string>) => Promise<ActionRun>,
  workspace: string,
  { vouched }: RerunBlobs,
): Promise<void> {
  const dir = path.join(workspace, 'model');
  expect((await fetch({ blobs: vouched.name })).exitCode).toBe(0);
  writeFileSync(path.join(dir, 'stray.bin'), 'not requested');
  mkdirSync(path.join(dir, 'nested', 'deeper'), { recursive: true });
  writeFileSync(path.join(dir, 'nested', 'deeper', 'extra.onnx'), 'not requested either');
  mkdirSync(path.join(dir, 'empty'));
  writeFileSync(path.join(dir, `.${vouched.name}.partial-0123abcd`), 'left by a killed run');

  const run = await fetch({ blobs: vouched.name });
  expect(errorLines(run)).toEqual([]);
  expect(run.exitCode).toBe(0);
  expect(entries(dir)).toEqual([LOCK_FILE, vouched.name].sort());
  for (const removed of ['stray.bin', 'nested/', 'nested/deeper/extra.onnx', 'empty/']) {
    expect(run.summary).toContain(`\`${removed}\``);
    expect(run.stdout).toContain(`${removed}: removed from the destination`);
  }
  expect(run.summary).toContain('not among the requested files');
  expect(run.outputs['cache-hit']).toBe('true');

  const foreign = path.join(workspace, 'app');
  mkdirSync(foreign);
  writeFileSync(path.join(foreign, 'main.py'), 'print("the user\'s code")');
  const refused = await fetch({ blobs: vouched.name, path: 'app' });
  expect(refused.exitCode).toBe(1);
  expect(errorLines(refused).join('\n')).toMatch(
    /'path' '.*app' holds 'main.py', which fetch-model did not write .*use a new or empty directory/,
  );
  expect(entries(foreign)).toEqual(['main.py']);
}

/**
 * Symbolic links and special files in the destination fail the step with a message naming
 * them, before anything there is touched; so does a destination that is itself a link.
 */
export async function expectLinksAndSpecialFilesRefused(
  fetch: (inputs: Record<string, string>) => Promise<ActionRun>,
  workspace: string,
  { vouched }: RerunBlobs,
): Promise<void> {
  const dir = path.join(workspace, 'model');
  const file = path.join(dir, vouched.name);
  expect((await fetch({ blobs: vouched.name })).exitCode).toBe(0);
  const refusal = async (what: RegExp) => {
    const run = await fetch({ blobs: vouched.name });
    expect(run.exitCode).toBe(1);
    expect(errorLines(run).join('\n')).toMatch(what);
    return run;
  };

  symlinkSync('/etc/passwd', path.join(dir, 'passwd'));
  await refusal(/holds 'passwd' \(a symbolic link\)\. fetch-model refuses symbolic links/);
  expect(lstatSync(path.join(dir, 'passwd')).isSymbolicLink()).toBe(true);
  rmSync(path.join(dir, 'passwd'));

  const outside = path.join(workspace, 'outside.bin');
  writeFileSync(outside, vouched.bytes);
  rmSync(file);
  symlinkSync(outside, file);
  await refusal(new RegExp(`holds '${escape(vouched.name)}' \\(a symbolic link\\)`));
  expect(readFileSync(outside).equals(vouched.bytes)).toBe(true);
  rmSync(file);

  execFileSync('mkfifo', [path.join(dir, 'pipe')]);
  await refusal(/holds 'pipe' \(a FIFO\)/);
  rmSync(path.join(dir, 'pipe'));

  const real = path.join(workspace, 'real');
  mkdirSync(real);
  symlinkSync(real, path.join(workspace, 'linked'));
  const linked = await fetch({ blobs: vouched.name, path: 'linked' });
  expect(linked.exitCode).toBe(1);
  expect(errorLines(linked).join('\n')).toMatch(/'path' '.*linked' is a symbolic link/);
  expect(entries(real)).toEqual([]);

  const repaired = await fetch({ blobs: vouched.name });
  expect(repaired.exitCode).toBe(0);
  expect(readFileSync(file).equals(vouched.bytes)).toBe(true);
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** Every ranged read answered 503 for good: the step fails and leaves nothing in `path`. */
export async function expectCleanFailureWhenUnavailable(
  proxy: FaultProxy,
  isRangedGet: (request: ProxiedRequest) => boolean,
  fetch: () => Promise<ActionRun>,
  workspace: string,
): Promise<void> {
  proxy.decide = (request) =>
    isRangedGet(request) ? { kind: 'status', status: 503 } : { kind: 'pass' };
  const run = await fetch();
  expect(run.exitCode).toBe(1);
  expect(errorLines(run).join('\n')).toMatch(/HTTP 503/);
  expect(entries(path.join(workspace, 'model'))).toEqual([]);
}

/**
 * The local-file scenarios (re-runs, a poisoned cache, extra files, links) as jest tests, for
 * a provider's test file: `fetch` runs the bundle against its store in `workspace()`.
 */
export function describeLocalFileScenarios(
  fetch: (inputs: Record<string, string>) => Promise<ActionRun>,
  workspace: () => string,
  blobs: () => RerunBlobs,
): void {
  it('skips files that are already in place on a re-run, and repairs a damaged one', () =>
    expectRerunSkipsAndRepairs(fetch, workspace(), blobs()));

  it('downloads again a file no digest from outside the cache vouches for, saying why', () =>
    expectUnvouchedFileDownloadedAgain(fetch, blobs()));

  describe.each(['stored digest', 'sha256 input'] as const)(
    'a poisoned cache, the file vouched for by the %s',
    (anchor) => {
      it.each(['same size and mtime', 'bytes and lock forged together'] as const)(
        'is downloaded again when its bytes were replaced with the %s',
        (forgery) => expectPoisonedCacheRejected(fetch, workspace(), blobs(), anchor, forgery),
      );
    },
  );

  it('removes files that are not requested from the destination, and lists them', () =>
    expectExtraFilesRemoved(fetch, workspace(), blobs()));

  it('refuses symbolic links and special files in the destination, naming them', () =>
    expectLinksAndSpecialFilesRefused(fetch, workspace(), blobs()));
}
