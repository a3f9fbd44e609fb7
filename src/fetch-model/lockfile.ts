import { promises as fs } from 'node:fs';
import { hashFile, type LockEntry } from '../common/model';

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
