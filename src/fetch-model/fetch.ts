import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ConfigurationError } from '../common/errors';
import { formatBytes, formatRate } from '../common/format';
import { Limiter, mapLimited } from '../common/limiter';
import type { Logger } from '../common/logger';
import { DEFAULT_RETRY, type RetryPolicy } from '../common/retry';
import { downloadObject, partialFiles, removePartial } from './download';
import type { FetchSettings } from './inputs';
import { modelDigest, readLock, writeLock, type LockFile } from '../common/model';
import { verifiedLocalDigest } from './lockfile';
import { resolveInside, safeRelativePath } from './paths';
import { sameEtag } from './specs';
import type { ObjectStore, RemoteObject } from './store';

/** One file of the model set, as the `files` output reports it. */
export interface FetchedFile {
  /** Blob name in the container. */
  name: string;
  /** Path relative to the destination directory. */
  relativePath: string;
  /** Absolute local path. */
  path: string;
  size: number;
  sha256: string;
  etag: string;
  versionId?: string;
  lastModified?: string;
  contentMd5?: string;
  /** The blob's URI, without credentials. */
  uri: string;
  /** Whether this run downloaded the file or found it already in place. */
  status: 'downloaded' | 'cached';
  /** Time spent downloading (0 when cached). */
  milliseconds: number;
  /** Whether the service's Content-MD5 was checked against the bytes. */
  md5Verified: boolean;
  /** Whether the service's stored SHA-256 checksum was checked against the bytes. */
  checksumSha256Verified: boolean;
  /** Ranged reads retried after a transient failure. */
  retries: number;
}

export interface FetchResult {
  destination: string;
  files: FetchedFile[];
  modelDigest: string;
  /** True when every file was already in place, so nothing was downloaded. */
  cacheHit: boolean;
  downloadedBytes: number;
  milliseconds: number;
}

interface Target {
  object: RemoteObject;
  relativePath: string;
  finalPath: string;
  expectedSha256?: string;
}

export interface FetchOptions {
  retry?: RetryPolicy;
}

/**
 * Brings the model set into `settings.destination`: resolves the blobs, keeps files the lock
 * shows are current, downloads the rest into temporary files, verifies every digest, and only
 * then renames them all into place. On failure no new file appears at a final path.
 */
export async function fetchModel(
  settings: FetchSettings,
  store: ObjectStore,
  logger: Logger,
  options: FetchOptions = {},
): Promise<FetchResult> {
  const started = Date.now();
  const targets = await resolveTargets(settings, store);
  await fs.mkdir(settings.destination, { recursive: true });
  const lock = await readLock(settings.destination);

  const cached: FetchedFile[] = [];
  const pending: Target[] = [];
  for (const target of targets) {
    const kept = await keptFile(target, lock);
    if (kept) cached.push(kept);
    else pending.push(target);
  }
  for (const file of cached) {
    logger.info(
      `${file.relativePath}: already in place (ETag ${file.etag}, sha256 ${file.sha256})`,
    );
  }
  for (const target of pending) checkMd5Available(target.object, settings);

  const limiter = new Limiter(settings.concurrency);
  const temps = new Map<Target, string>();
  let downloaded: FetchedFile[];
  try {
    downloaded = await mapLimited(pending, settings.concurrency, async (target) => {
      await fs.mkdir(path.dirname(target.finalPath), { recursive: true });
      const temp = path.join(
        path.dirname(target.finalPath),
        `.${path.basename(target.finalPath)}.partial-${randomBytes(4).toString('hex')}`,
      );
      temps.set(target, temp);
      return downloadOne(target, temp, store, limiter, settings, logger, options);
    });
  } catch (error) {
    await Promise.all([...temps.values()].map(removePartial));
    throw error;
  }
  try {
    for (const [index, file] of downloaded.entries()) {
      const temp = temps.get(pending[index])!;
      await fs.rename(temp, file.path);
      partialFiles.delete(temp);
    }
  } finally {
    await Promise.all(
      [...partialFiles].filter((t) => [...temps.values()].includes(t)).map(removePartial),
    );
  }

  const files = [...cached, ...downloaded].sort((a, b) =>
    a.relativePath < b.relativePath ? -1 : 1,
  );
  const nextLock: LockFile = { version: 1, files: {} };
  for (const file of files) {
    const stats = await fs.stat(file.path);
    nextLock.files[file.relativePath] = {
      name: file.name,
      uri: file.uri,
      etag: file.etag,
      versionId: file.versionId,
      size: file.size,
      sha256: file.sha256,
      mtimeMs: stats.mtimeMs,
    };
  }
  await writeLock(settings.destination, nextLock);

  return {
    destination: settings.destination,
    files,
    modelDigest: modelDigest(
      files.map((file) => ({ path: file.relativePath, sha256: file.sha256 })),
    ),
    cacheHit: downloaded.length === 0,
    downloadedBytes: downloaded.reduce((total, file) => total + file.size, 0),
    milliseconds: Date.now() - started,
  };
}

async function resolveTargets(settings: FetchSettings, store: ObjectStore): Promise<Target[]> {
  let entries: Array<{ object: RemoteObject; relativePath: string }>;
  if (settings.source.kind === 'blobs') {
    const specs = settings.source.specs;
    // Check every name before the first request: a bad entry fails fast and downloads nothing.
    const relativePaths = specs.map((spec) => safeRelativePath(spec.name, 'Blob name'));
    const objects = await mapLimited(specs, settings.concurrency, (spec) => store.head(spec));
    entries = objects.map((object, index) => ({ object, relativePath: relativePaths[index] }));
  } else {
    const prefix = settings.source.prefix;
    safeRelativePath(prefix.slice(0, -1), 'prefix');
    const objects = await store.list(prefix);
    if (objects.length === 0) {
      throw new ConfigurationError(
        `No blobs found under prefix '${prefix}' in ${store.description}. Check the 'prefix' ` +
          `input (names are case-sensitive).`,
      );
    }
    entries = objects.map((object) => ({
      object,
      relativePath: safeRelativePath(object.name.slice(prefix.length), 'Blob name under prefix'),
    }));
  }

  const unused = new Set(settings.expectedSha256.keys());
  const targets = entries.map(({ object, relativePath }) => {
    const expected =
      settings.expectedSha256.get(object.name) ?? settings.expectedSha256.get(relativePath);
    unused.delete(object.name);
    unused.delete(relativePath);
    return {
      object,
      relativePath,
      finalPath: resolveInside(settings.destination, relativePath),
      expectedSha256: expected,
    };
  });
  if (unused.size > 0) {
    throw new ConfigurationError(
      `'sha256' names ${[...unused].map((name) => `'${name}'`).join(', ')}, which is not among ` +
        `the blobs fetched (${entries.map((entry) => `'${entry.object.name}'`).join(', ')}).`,
    );
  }
  return targets;
}

/** The file as already in place, when the lock shows it is this exact content. */
async function keptFile(target: Target, lock: LockFile): Promise<FetchedFile | undefined> {
  const entry = lock.files[target.relativePath];
  const { object } = target;
  if (!entry || entry.name !== object.name || !sameEtag(entry.etag, object.etag)) return undefined;
  if (entry.size !== object.size || (entry.versionId ?? '') !== (object.versionId ?? '')) {
    return undefined;
  }
  const local = await verifiedLocalDigest(target.finalPath, entry);
  if (!local) return undefined;
  if (target.expectedSha256 && target.expectedSha256 !== local.sha256) return undefined;
  return toFetchedFile(target, local.sha256, 'cached', 0, 0, { md5: false, sha256: false });
}

function checkMd5Available(object: RemoteObject, settings: FetchSettings): void {
  if (settings.verifyMd5 === 'required' && !object.contentMd5) {
    throw new ConfigurationError(
      `Blob '${object.name}' has no MD5 stored, and verify-md5 is 'required'. Upload it ` +
        `with an MD5 (Azure: az storage blob upload --content-md5, or a single Put Blob; S3: a ` +
        `single-part upload without SSE-KMS, whose ETag is its MD5), or set verify-md5 to ` +
        `'auto', or pin its sha256 with the 'sha256' input.`,
    );
  }
}

async function downloadOne(
  target: Target,
  temp: string,
  store: ObjectStore,
  limiter: Limiter,
  settings: FetchSettings,
  logger: Logger,
  options: FetchOptions,
): Promise<FetchedFile> {
  const { object } = target;
  const checkMd5 = settings.verifyMd5 !== 'off' && object.contentMd5 !== undefined;
  const started = Date.now();
  const progress = progressLogger(target.relativePath, object.size, started, logger);
  const result = await downloadObject(
    store,
    object,
    temp,
    limiter,
    {
      blockSize: settings.blockSize,
      windowBytes: settings.blockSize * settings.concurrency,
      retry: options.retry ?? DEFAULT_RETRY,
      md5: checkMd5,
    },
    logger,
    progress,
  );
  const milliseconds = Date.now() - started;
  if (checkMd5 && result.md5 !== object.contentMd5) {
    throw new Error(
      `${object.md5Source ?? 'Content-MD5'} of '${object.name}' does not match its bytes ` +
        `(stored MD5 ${object.contentMd5}, received ${result.md5}): the download was corrupted ` +
        `or the stored MD5 is wrong. Nothing was written.`,
    );
  }
  const checkSha256 = object.checksumSha256 !== undefined;
  const receivedSha256 = Buffer.from(result.sha256, 'hex').toString('base64');
  if (checkSha256 && receivedSha256 !== object.checksumSha256) {
    throw new Error(
      `The stored SHA-256 checksum of '${object.name}' does not match its bytes (stored ` +
        `${object.checksumSha256}, received ${receivedSha256}): the download was corrupted or ` +
        `the object was changed. Nothing was written.`,
    );
  }
  if (target.expectedSha256 && target.expectedSha256 !== result.sha256) {
    throw new ConfigurationError(
      `sha256 of '${object.name}' is ${result.sha256}, but the 'sha256' input expects ` +
        `${target.expectedSha256}. Nothing was written. Update the expected digest if the ` +
        `model was replaced on purpose.`,
    );
  }
  logger.info(
    `${target.relativePath}: ${formatBytes(object.size)} in ${milliseconds} ms ` +
      `(${formatRate(object.size, milliseconds)}), sha256 ${result.sha256}` +
      `${checkMd5 ? `, ${object.md5Source ?? 'Content-MD5'} verified` : ''}` +
      `${checkSha256 ? ', stored SHA-256 checksum verified' : ''}`,
  );
  return toFetchedFile(target, result.sha256, 'downloaded', milliseconds, result.retries, {
    md5: checkMd5,
    sha256: checkSha256,
  });
}

function toFetchedFile(
  target: Target,
  sha256: string,
  status: FetchedFile['status'],
  milliseconds: number,
  retries: number,
  verified: { md5: boolean; sha256: boolean },
): FetchedFile {
  const { object } = target;
  return {
    name: object.name,
    relativePath: target.relativePath,
    path: target.finalPath,
    size: object.size,
    sha256,
    etag: object.etag,
    versionId: object.versionId,
    lastModified: object.lastModified,
    contentMd5: object.contentMd5,
    uri: object.uri,
    status,
    milliseconds,
    md5Verified: verified.md5,
    checksumSha256Verified: verified.sha256,
    retries,
  };
}

/** Logs one line per tenth of a file, not one per chunk. */
function progressLogger(name: string, size: number, started: number, logger: Logger) {
  let received = 0;
  let nextTenth = 1;
  return (bytes: number) => {
    received += bytes;
    if (size < 16 * 1024 * 1024) return;
    while (nextTenth < 10 && received >= (size * nextTenth) / 10) {
      logger.info(
        `${name}: ${nextTenth * 10}% of ${formatBytes(size)} ` +
          `(${formatRate(received, Date.now() - started)})`,
      );
      nextTenth++;
    }
  };
}
