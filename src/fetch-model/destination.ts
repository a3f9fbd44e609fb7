import { promises as fs, type Dirent } from 'node:fs';
import * as path from 'node:path';
import { ConfigurationError, quote } from '../common/errors';
import { LOCK_FILE } from '../common/model';

/** Temporary files of a download, as fetch.ts names them: `.<name>.partial-<8 hex>`. */
export const PARTIAL_FILE = /^\..+\.partial-[0-9a-f]{8}$/;

/** The most entries a message names before it says how many more there are. */
const NAMED = 10;

/**
 * Makes `root` hold nothing but the requested files: a restored Actions cache, or an earlier
 * run, may have left anything there, and the next step ships the whole directory. Refuses
 * symbolic links and special files anywhere under it (they would make a later step read or
 * write outside it); removes every other entry that is not a requested file, its parent
 * directory or the state file, and returns their relative paths. Removes nothing from a
 * directory without fetch-model's state file (other than its own partial files): that one
 * was not written by fetch-model, and its files may be the user's.
 */
export async function prepareDestination(
  root: string,
  requested: ReadonlySet<string>,
): Promise<string[]> {
  let stats;
  try {
    stats = await fs.lstat(root);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'ENOENT') throw error;
    await fs.mkdir(root, { recursive: true });
    return [];
  }
  if (stats.isSymbolicLink()) {
    throw new ConfigurationError(
      `'path' ${quote(root)} is a symbolic link. fetch-model writes only into a real ` +
        `directory; point 'path' at one (a restored cache or an earlier step may have made ` +
        `the link).`,
    );
  }
  if (!stats.isDirectory()) {
    throw new ConfigurationError(`'path' ${quote(root)} exists and is not a directory.`);
  }

  const refused: string[] = [];
  const entries: Array<{ relative: string; directory: boolean }> = [];
  const walk = async (dir: string, prefix: string): Promise<void> => {
    for (const entry of await fs.readdir(dir, { withFileTypes: true })) {
      const relative = prefix + entry.name;
      if (entry.isDirectory()) {
        entries.push({ relative, directory: true });
        await walk(path.join(dir, entry.name), `${relative}/`);
      } else if (entry.isFile()) {
        entries.push({ relative, directory: false });
      } else {
        refused.push(`'${relative}' (${kindOf(entry)})`);
      }
    }
  };
  await walk(root, '');
  if (refused.length > 0) {
    throw new ConfigurationError(
      `'path' ${quote(root)} holds ${named(refused)}. fetch-model refuses symbolic links and ` +
        `special files in its destination: they would make the files shipped from it differ ` +
        `from the files fetched. Remove them, or use a new directory (if it is restored from ` +
        `a cache, drop that cache entry).`,
    );
  }

  const parents = new Set<string>();
  for (const file of requested) {
    for (let dir = path.posix.dirname(file); dir !== '.'; dir = path.posix.dirname(dir)) {
      parents.add(dir);
    }
  }
  const extra = entries.filter(({ relative, directory }) =>
    directory ? !parents.has(relative) : !requested.has(relative) && relative !== LOCK_FILE,
  );
  // A removed directory takes its contents with it: remove only the topmost extra entries.
  const topmost = extra.filter(
    ({ relative }) =>
      !extra.some((other) => other.directory && relative.startsWith(`${other.relative}/`)),
  );
  const ours = (relative: string) => PARTIAL_FILE.test(path.posix.basename(relative));
  const hasState = entries.some((entry) => entry.relative === LOCK_FILE && !entry.directory);
  const foreign = extra.filter((entry) => !entry.directory && !ours(entry.relative));
  if (!hasState && foreign.length > 0) {
    throw new ConfigurationError(
      `'path' ${quote(root)} holds ${named(foreign.map((entry) => `'${entry.relative}'`))}, ` +
        `which fetch-model did not write (the directory has no ${LOCK_FILE}). The destination ` +
        `must hold only the fetched files, and fetch-model deletes nothing it did not write: ` +
        `use a new or empty directory, or remove these files first.`,
    );
  }
  for (const { relative } of topmost) {
    await fs.rm(path.join(root, relative), { recursive: true, force: true });
  }
  return extra.map(({ relative, directory }) => (directory ? `${relative}/` : relative));
}

function kindOf(entry: Dirent): string {
  if (entry.isSymbolicLink()) return 'a symbolic link';
  if (entry.isFIFO()) return 'a FIFO';
  if (entry.isSocket()) return 'a socket';
  if (entry.isBlockDevice()) return 'a block device';
  if (entry.isCharacterDevice()) return 'a character device';
  return 'not a regular file';
}

function named(items: string[]): string {
  const shown = items.slice(0, NAMED).join(', ');
  return items.length > NAMED ? `${shown} and ${items.length - NAMED} more` : shown;
}
