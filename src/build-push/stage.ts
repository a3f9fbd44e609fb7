import { copyFile, link, mkdir, rm, stat } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigurationError, quote } from '../common/errors';
import type { ModelFile } from './model-files';

/**
 * Puts the model files into the build context (hard links when the model is on the same file
 * system, copies otherwise) so the Dockerfile can `COPY model/ /app/model/`. Returns a function
 * that removes the staging again; it refuses a directory that already exists, so it never
 * deletes something it did not create.
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
    for (const file of files) {
      const target = path.join(directory, ...file.relative.split('/'));
      await mkdir(path.dirname(target), { recursive: true });
      try {
        await link(file.absolute, target);
        linked++;
      } catch {
        await copyFile(file.absolute, target);
        copied++;
      }
    }
  } catch (error) {
    await remove();
    throw error;
  }
  return { directory, linked, copied, remove };
}
