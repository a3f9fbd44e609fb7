import { createHash } from 'node:crypto';

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
