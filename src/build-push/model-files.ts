import { readdir, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigurationError, quote } from '../common/errors';
import { hashFile, LOCK_FILE, modelDigest } from '../common/model';

/** One file of the model directory. */
export interface ModelFile {
  /** Path relative to the model directory, with forward slashes. */
  relative: string;
  absolute: string;
  size: number;
  /** Whether any execute bit is set (kept in the image, everything else is normalised). */
  executable: boolean;
}

/** fetch-model's bookkeeping, which describes the download and does not belong in the image. */
const EXCLUDED = new Set([LOCK_FILE]);

/** Every regular file under `dir` (symlinks followed), sorted by relative path byte order. */
export async function listModelFiles(dir: string, input = 'model-path'): Promise<ModelFile[]> {
  const top = await stat(dir).catch(() => undefined);
  if (!top?.isDirectory()) {
    throw new ConfigurationError(
      `${input} ${quote(dir)} is not a directory. Expected the directory fetch-model wrote ` +
        `(its 'path' output).`,
    );
  }
  const files: ModelFile[] = [];
  const walk = async (current: string): Promise<void> => {
    for (const entry of await readdir(current, { withFileTypes: true })) {
      const absolute = path.join(current, entry.name);
      const relative = path.relative(dir, absolute).split(path.sep).join('/');
      if (current === dir && EXCLUDED.has(entry.name)) continue;
      const info = await stat(absolute);
      if (info.isDirectory()) await walk(absolute);
      else if (info.isFile()) {
        files.push({ relative, absolute, size: info.size, executable: (info.mode & 0o111) !== 0 });
      }
    }
  };
  await walk(dir);
  if (files.length === 0) {
    throw new ConfigurationError(`${input} ${quote(dir)} holds no files; expected the model.`);
  }
  return files.sort((a, b) => compareBytes(a.relative, b.relative));
}

export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/** The model digest fetch-model would report for these files, for when none was passed in. */
export async function computeModelDigest(files: ModelFile[]): Promise<string> {
  const hashed = [];
  for (const file of files)
    hashed.push({ path: file.relative, sha256: await hashFile(file.absolute) });
  return modelDigest(hashed);
}
