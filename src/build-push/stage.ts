import { link, lstat, mkdir, open, rm, stat, unlink } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigurationError, quote } from '../common/errors';
import { openModelFile, readVerified, type ModelFile } from './model-files';

/**
 * Puts the model files into the build context so the Dockerfile can `COPY model/ /app/model/`:
 * a hard link when the model is on the same file system, a copy otherwise, and either way each
 * file's bytes are read once and checked against their sha256 (for a link, the bytes of the very
 * inode that was linked). A file that does not match removes the whole staging and fails.
 * Returns a function that removes the staging again; it refuses a directory that already exists,
 * so it never deletes something it did not create.
 */
export async function stageModel(
  context: string,
  contextDir: string,
  files: ModelFile[],
): Promise<{ directory: string; linked: number; copied: number; remove: () => Promise<void> }> {
  const directory = path.resolve(context, contextDir);
  if (!directory.startsWith(path.resolve(context) + path.sep)) {
    throw new ConfigurationError(
      `Invalid model-context-dir ${quote(contextDir)}. Expected a relative directory inside the context, such as model.`,
    );
  }
  if (await stat(directory).catch(() => undefined)) {
    throw new ConfigurationError(
      `model-context-dir ${quote(contextDir)} already exists in the build context ${quote(context)}. ` +
        'The action stages the model there and removes it afterwards; choose a name that is free, ' +
        'or remove the directory.',
    );
  }
  const remove = () => rm(directory, { recursive: true, force: true });
  let linked = 0;
  let copied = 0;
  try {
    await mkdir(directory);
    for (const file of files) {
      const target = path.join(directory, ...file.relative.split('/'));
      await mkdir(path.dirname(target), { recursive: true });
      const source = await openModelFile(file);
      try {
        const info = await source.stat();
        if (await linkSameInode(file.absolute, target, info)) {
          await readVerified(file, source);
          linked++;
        } else {
          const copy = await open(target, 'wx', file.executable ? 0o755 : 0o644);
          try {
            await readVerified(file, source, async (chunk) => {
              await copy.write(chunk);
            });
          } finally {
            await copy.close();
          }
          copied++;
        }
      } finally {
        await source.close();
      }
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { directory, linked, copied, remove };
}

/** Hard-links `source` to `target` when that gives the inode already opened; false otherwise. */
async function linkSameInode(
  source: string,
  target: string,
  opened: { ino: number; dev: number },
): Promise<boolean> {
  try {
    await link(source, target);
  } catch {
    return false; // another file system, or links not allowed: copy instead
  }
  const staged = await lstat(target);
  if (staged.ino === opened.ino && staged.dev === opened.dev) return true;
  // The path was replaced between opening and linking: stage the opened file's bytes instead.
  await unlink(target);
  return false;
}
