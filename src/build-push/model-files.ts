import { createHash } from 'node:crypto';
import { constants, type Stats } from 'node:fs';
import { open, readdir, readlink, stat, type FileHandle } from 'node:fs/promises';
import * as path from 'node:path';
import { ConfigurationError, quote } from '../common/errors';
import { LOCK_FILE, modelDigest, readLock } from '../common/model';
import type { ModelFileProvenance } from './inputs';

/** SHA-256 of no bytes: what an empty file must be expected to hash to. */
export const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';
const SHA256_HEX = /^[a-f0-9]{64}$/;
/** How many names of each kind an error lists. */
const SHOWN = 10;

/** One file of the model, as named by model-files or fetch-model's state file. */
export interface ModelFile {
  /** Path relative to the model directory, with forward slashes. */
  relative: string;
  absolute: string;
  size: number;
  /** The sha256 (hex) the file's bytes must have; checked while they are read. */
  sha256: string;
  /** Whether any execute bit is set (kept in the image, everything else is normalised). */
  executable: boolean;
  /** Where the expected sha256 came from, for error messages. */
  from: string;
}

/** The model build-push ships: exactly the named files, and the digest of the set. */
export interface ModelSet {
  files: ModelFile[];
  /** The model digest of these paths and sha256s, as fetch-model computes it. */
  digest: string;
  /** 'model-files' or the state file: what named the files. */
  source: string;
}

interface Expected {
  sha256: string;
  size?: number;
}

/**
 * The files to ship from `dir`: exactly those `provenance` (fetch-model's `files` output, the
 * `model-files` input) names, or without it the files fetch-model's state file names, each
 * with the sha256 its bytes must have. Anything else in the directory is an error that names
 * it: a symbolic link (which would ship whatever it points at), a device, FIFO or socket, a
 * regular file outside the set, and a named file that is missing or has another size.
 */
export async function resolveModelFiles(
  dir: string,
  provenance: ModelFileProvenance[] | undefined,
  input = 'model-path',
): Promise<ModelSet> {
  const top = await stat(dir).catch(() => undefined);
  if (!top?.isDirectory()) {
    throw new ConfigurationError(
      `${input} ${quote(dir)} is not a directory. Expected the directory fetch-model wrote ` +
        `(its 'path' output).`,
    );
  }
  const source = provenance ? 'model-files' : `fetch-model's state file ${LOCK_FILE}`;
  const expected = provenance
    ? expectedFromProvenance(dir, provenance)
    : await expectedFromLock(dir, input);

  const found = new Map<string, Stats>();
  const extra: string[] = [];
  const links: string[] = [];
  const special: string[] = [];
  const notRegular = new Set<string>();
  const walk = async (current: string): Promise<void> => {
    const entries = await readdir(current, { withFileTypes: true });
    entries.sort((a, b) => compareBytes(a.name, b.name));
    for (const entry of entries) {
      const absolute = path.join(current, entry.name);
      const relative = path.relative(dir, absolute).split(path.sep).join('/');
      if (current === dir && entry.name === LOCK_FILE && entry.isFile()) continue;
      if (entry.isSymbolicLink()) {
        const target = await readlink(absolute).catch(() => '?');
        links.push(`${quote(relative)} → ${quote(target)}`);
        notRegular.add(relative);
      } else if (entry.isDirectory()) {
        await walk(absolute);
      } else if (entry.isFile()) {
        if (expected.has(relative)) found.set(relative, await stat(absolute));
        else extra.push(quote(relative));
      } else {
        special.push(`${quote(relative)} (${kindOf(entry)})`);
        notRegular.add(relative);
      }
    }
  };
  await walk(dir);

  const missing: string[] = [];
  const resized: string[] = [];
  for (const [relative, want] of expected) {
    const info = found.get(relative);
    if (!info) {
      if (!notRegular.has(relative)) missing.push(quote(relative));
    } else if (want.size !== undefined && info.size !== want.size)
      resized.push(`${quote(relative)} (${info.size} bytes, ${source} says ${want.size})`);
    else if (info.size === 0 && want.sha256 !== EMPTY_SHA256)
      resized.push(`${quote(relative)} (empty, but ${source} gives a sha256 of content)`);
  }
  const problems = [
    listed(
      'symbolic links (build-push ships no link, it would copy what the link points at)',
      links,
    ),
    listed('devices, FIFOs or sockets', special),
    listed(`files ${source} does not name`, extra),
    listed(`files ${source} names that are missing`, missing),
    listed('files with another size than expected', resized),
  ].filter(Boolean);
  if (problems.length > 0) {
    throw new ConfigurationError(
      `${input} ${quote(dir)} does not hold exactly the model ${source} describes: ` +
        `${problems.join('; ')}. Expected only the regular files ${source} names, as fetch-model ` +
        'wrote them; remove anything else, or fetch the model again.',
    );
  }

  const files = [...expected].map(([relative, want]) => {
    const info = found.get(relative)!;
    return {
      relative,
      absolute: path.join(dir, ...relative.split('/')),
      size: info.size,
      sha256: want.sha256,
      executable: (info.mode & 0o111) !== 0,
      from: source,
    };
  });
  files.sort((a, b) => compareBytes(a.relative, b.relative));
  return {
    files,
    digest: modelDigest(files.map((file) => ({ path: file.relative, sha256: file.sha256 }))),
    source,
  };
}

function expectedFromProvenance(
  dir: string,
  provenance: ModelFileProvenance[],
): Map<string, Expected> {
  const expected = new Map<string, Expected>();
  for (const entry of provenance) {
    const relative = relativeName(dir, entry.path ?? entry.name, entry.name);
    const sha256 = (entry.sha256 ?? '').toLowerCase();
    if (!SHA256_HEX.test(sha256)) {
      throw new ConfigurationError(
        `model-files entry ${quote(entry.name)} has sha256 ${quote(String(entry.sha256 ?? ''))}. ` +
          "Expected fetch-model's files output, which gives each file's sha256 as 64 hex digits.",
      );
    }
    if (expected.has(relative)) {
      throw new ConfigurationError(
        `model-files names ${quote(relative)} twice. Expected fetch-model's files output, one entry per file.`,
      );
    }
    expected.set(relative, {
      sha256,
      size: typeof entry.size === 'number' ? entry.size : undefined,
    });
  }
  if (expected.size === 0) {
    throw new ConfigurationError(
      "model-files is an empty list. Expected fetch-model's files output, naming every model file.",
    );
  }
  return expected;
}

async function expectedFromLock(dir: string, input: string): Promise<Map<string, Expected>> {
  const lock = await readLock(dir);
  const expected = new Map<string, Expected>();
  for (const [name, entry] of Object.entries(lock.files)) {
    const sha256 = String(entry?.sha256 ?? '').toLowerCase();
    if (!SHA256_HEX.test(sha256)) continue;
    expected.set(relativeName(dir, name, name, LOCK_FILE), {
      sha256,
      size: typeof entry.size === 'number' ? entry.size : undefined,
    });
  }
  if (expected.size === 0) {
    throw new ConfigurationError(
      `${input} ${quote(dir)} has no fetch-model state file (${LOCK_FILE}) naming its files, and ` +
        "'model-files' is not set. Pass fetch-model's files output as model-files, so build-push " +
        'knows which files to ship and which sha256 each must have.',
    );
  }
  return expected;
}

/** A file's path relative to the model directory, refusing one that would leave it. */
function relativeName(dir: string, value: string, name: string, from = 'model-files'): string {
  const relative = path.isAbsolute(value)
    ? path.relative(path.resolve(dir), path.resolve(value))
    : value;
  const parts = relative.split(/[\\/]/);
  if (
    relative === '' ||
    path.isAbsolute(relative) ||
    parts.some((part) => part === '' || part === '.' || part === '..') ||
    relative === LOCK_FILE
  ) {
    throw new ConfigurationError(
      `${from} names ${quote(name)} at ${quote(value)}, which is not a file inside the model ` +
        `directory ${quote(dir)}. Expected paths inside model-path, as fetch-model writes them.`,
    );
  }
  return parts.join('/');
}

function listed(what: string, names: string[]): string {
  if (names.length === 0) return '';
  const shown = names.slice(0, SHOWN).join(', ');
  return `${what}: ${shown}${names.length > SHOWN ? ` and ${names.length - SHOWN} more` : ''}`;
}

function kindOf(entry: {
  isBlockDevice(): boolean;
  isCharacterDevice(): boolean;
  isFIFO(): boolean;
  isSocket(): boolean;
}): string {
  if (entry.isBlockDevice()) return 'block device';
  if (entry.isCharacterDevice()) return 'character device';
  if (entry.isFIFO()) return 'FIFO';
  if (entry.isSocket()) return 'socket';
  return 'not a regular file';
}

export function compareBytes(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

/**
 * Opens a model file for reading without following a symbolic link, and checks it is still the
 * regular file of the size it was listed with.
 */
export async function openModelFile(file: ModelFile): Promise<FileHandle> {
  let handle: FileHandle;
  try {
    handle = await open(file.absolute, constants.O_RDONLY | constants.O_NOFOLLOW);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ELOOP') {
      throw new ConfigurationError(
        `model file ${quote(file.relative)} became a symbolic link after it was listed; ` +
          'build-push ships no link. Fetch the model again.',
      );
    }
    throw error;
  }
  const info = await handle.stat();
  if (!info.isFile() || info.size !== file.size) {
    await handle.close();
    throw new ConfigurationError(
      `model file ${quote(file.relative)} changed after it was listed ` +
        `(${info.isFile() ? `${info.size} bytes, expected ${file.size}` : 'no longer a regular file'}).`,
    );
  }
  return handle;
}

/** The error for a file whose bytes are not the ones its sha256 names. */
export function digestMismatch(file: ModelFile, actual: string): ConfigurationError {
  return new ConfigurationError(
    `model file ${quote(file.relative)} does not match its sha256 in ${file.from}: expected ` +
      `${file.sha256}, read ${actual}. Its bytes changed after fetch-model verified them; ` +
      'nothing was shipped. Fetch the model again.',
  );
}

/**
 * Reads a whole model file through `handle`, passing each chunk to `each` (to copy it) and
 * checking the sha256 as the bytes go by, in one pass.
 */
export async function readVerified(
  file: ModelFile,
  handle: FileHandle,
  each?: (chunk: Buffer) => Promise<void>,
  chunkSize = 4 * 1024 * 1024,
): Promise<void> {
  const hash = createHash('sha256');
  // One buffer for the whole file: `each` is awaited before the next read overwrites it, and
  // fresh memory per chunk would cost a page fault per page.
  const shared = Buffer.allocUnsafe(Math.max(1, Math.min(chunkSize, file.size)));
  let position = 0;
  while (position < file.size) {
    const buffer = shared.subarray(0, Math.min(chunkSize, file.size - position));
    const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
    if (bytesRead === 0) break;
    const chunk = buffer.subarray(0, bytesRead);
    hash.update(chunk);
    if (each) await each(chunk);
    position += bytesRead;
  }
  if (position !== file.size) {
    throw new ConfigurationError(
      `model file ${quote(file.relative)} shrank while it was read (${position} of ${file.size} bytes).`,
    );
  }
  const actual = hash.digest('hex');
  if (actual !== file.sha256) throw digestMismatch(file, actual);
}
