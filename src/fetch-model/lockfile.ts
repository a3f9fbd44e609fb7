import { createHash } from 'node:crypto';
import { createReadStream, promises as fs } from 'node:fs';
import * as path from 'node:path';

/** Name of the lock file kept in the destination directory. */
export const LOCK_FILE = '.fetch-model.lock.json';

/** What the lock file remembers of one downloaded file. */
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

/** Writes the lock file atomically: a reader sees the old one or the new one, never half. */
export async function writeLock(dir: string, lock: LockFile): Promise<void> {
  const target = path.join(dir, LOCK_FILE);
  const temp = `${target}.${process.pid}.tmp`;
  await fs.writeFile(temp, JSON.stringify(lock, null, 2) + '\n');
  await fs.rename(temp, target);
}

/** SHA-256 of a file on disk, streamed. */
export async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: 1024 * 1024 })) {
    hash.update(chunk as Buffer);
  }
  return hash.digest('hex');
}

/**
 * The sha256 of a local file when it is still what the lock says was downloaded: same size,
 * and either the same mtime (trusted, as git and make do) or the same digest after re-hashing
 * (a restore from a cache changes mtimes). Undefined when the file must be downloaded again.
 */
export async function verifiedLocalDigest(
  file: string,
  entry: LockEntry,
): Promise<{ sha256: string; mtimeMs: number } | undefined> {
  let stats;
  try {
    stats = await fs.stat(file);
  } catch {
    return undefined;
  }
  if (!stats.isFile() || stats.size !== entry.size) return undefined;
  if (stats.mtimeMs === entry.mtimeMs) return { sha256: entry.sha256, mtimeMs: stats.mtimeMs };
  const sha256 = await hashFile(file);
  return sha256 === entry.sha256 ? { sha256, mtimeMs: stats.mtimeMs } : undefined;
}
