import { createHash } from 'node:crypto';
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { LOCK_FILE, type LockFile } from '../../src/common/model';

/**
 * Writes fetch-model's state file for the regular files under `dir` (as fetch-model leaves it
 * after a download), so build-push finds which files to ship and their sha256s. Returns the
 * entries, relative path → sha256.
 */
export function writeStateFile(dir: string): Record<string, string> {
  const lock: LockFile = { version: 1, files: {} };
  const hashes: Record<string, string> = {};
  const walk = (current: string) => {
    for (const entry of readdirSync(current, { withFileTypes: true })) {
      const absolute = path.join(current, entry.name);
      const relative = path.relative(dir, absolute).split(path.sep).join('/');
      if (relative === LOCK_FILE) continue;
      if (entry.isDirectory()) walk(absolute);
      else if (entry.isFile()) {
        const sha256 = createHash('sha256').update(readFileSync(absolute)).digest('hex');
        hashes[relative] = sha256;
        const info = statSync(absolute);
        lock.files[relative] = {
          name: relative,
          uri: `https://acct.blob.core.windows.net/models/${relative}`,
          etag: '"0x8D1"',
          size: info.size,
          sha256,
          mtimeMs: info.mtimeMs,
        };
      }
    }
  };
  walk(dir);
  writeFileSync(path.join(dir, LOCK_FILE), JSON.stringify(lock));
  return hashes;
}
