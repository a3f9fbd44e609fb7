import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';

/**
 * The model contract between fetch-model and build-push: the digest that names a model set,
 * the state file fetch-model keeps beside the files it wrote, and how a file is hashed.
 */

/** Name of the state file fetch-model keeps in the destination directory. */
export const LOCK_FILE = '.fetch-model.lock.json';

/** What the state file remembers of one downloaded file. */
export interface LockEntry {
  /** Blob name in the store. */
  name: string;
  uri: string;
  etag: string;
  versionId?: string;
  size: number;
  sha256: string;
  /** The file's mtime when it was written or last verified; a different one means re-hash. */
  mtimeMs: number;
}

export interface LockFile {
  version: 1;
  /** Keyed by path relative to the destination. */
  files: Record<string, LockEntry>;
}

export async function readLock(dir: string): Promise<LockFile> {
  try {
    const parsed = JSON.parse(await fs.readFile(path.join(dir, LOCK_FILE), 'utf8'));
    if (parsed?.version === 1 && parsed.files && typeof parsed.files === 'object') return parsed;
  } catch {
    // Missing or unreadable: nothing is known, everything is downloaded.
  }
  return { version: 1, files: {} };
}

/** Writes the state file atomically: a reader sees the old one or the new one, never half. */
export async function writeLock(dir: string, lock: LockFile): Promise<void> {
  const target = path.join(dir, LOCK_FILE);
  const temp = `${target}.${process.pid}.tmp`;
  await fs.writeFile(temp, JSON.stringify(lock, null, 2) + '\n');
  await fs.rename(temp, target);
}

/** SHA-256 (hex) of a file on disk, streamed. */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 4 * 1024 * 1024 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/**
 * One digest for a whole model set: SHA-256 over the lines `<path> <sha256>\n`, sorted by path
 * (the file's path relative to the destination). The same files give the same digest whatever
 * their order in the inputs, their blob prefix or their download time.
 */
export function modelDigest(files: ReadonlyArray<{ path: string; sha256: string }>): string {
  const lines = files
    .map((file) => `${file.path} ${file.sha256}\n`)
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  return createHash('sha256').update(lines.join('')).digest('hex');
}
