import { randomBytes } from 'node:crypto';
import { promises as fs } from 'node:fs';
import * as path from 'node:path';
import { ConfigurationError } from '../common/errors';
import { formatBytes, formatRate } from '../common/format';
import { Limiter, mapLimited } from '../common/limiter';
import type { Logger } from '../common/logger';
import { DEFAULT_RETRY, type RetryPolicy } from '../common/retry';
import {
  downloadObject,
  partialFiles,
  removePartial,
  SLAB_SIZE,
  type DownloadSettings,
} from './download';
import { WorkerHashRunner } from '../common/hash-workers';
import { SlabPool } from '../common/slab-pool';
import { YoungGenerationCollector } from './young-gc';
import type { FetchSettings } from './inputs';
import { LOCK_FILE, modelDigest, writeLock, type LockFile } from '../common/model';
import { prepareDestination } from './destination';
import { checkLocalFile } from './local-files';
import { resolveInside, safeRelativePath } from './paths';
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
  /** For a file kept from an earlier run: the digest from outside the cache its bytes matched. */
  verifiedBy?: string;
  /** For a file kept from an earlier run: time spent re-hashing it. */
  hashMilliseconds?: number;
  /** Why a file that was in place was downloaded again. */
  redownloadReason?: string;
}

export interface FetchResult {
  destination: string;
  files: FetchedFile[];
  modelDigest: string;
  /** True when every file was already in place and verified, so nothing was downloaded. */
  cacheHit: boolean;
  /** Entries removed from the destination because they are not requested files. */
  removed: string[];
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

/** Local files verified at once (each may take two hash workers). */
const VERIFY_CONCURRENCY = 4;

/**
 * Brings the model set into `settings.destination`: resolves the blobs, clears the destination
 * of anything else, keeps files whose bytes match a digest from outside the cache, downloads
 * the rest into temporary files, verifies every digest, and only then renames them all into
 * place and writes the state file naming them. On failure no new file appears at a final path.
 */
export async function fetchModel(
  settings: FetchSettings,
  store: ObjectStore,
  logger: Logger,
  options: FetchOptions = {},
): Promise<FetchResult> {
  const started = Date.now();
  const targets = await resolveTargets(settings, store);
  const removed = await prepareDestination(
    settings.destination,
    new Set(targets.map((target) => target.relativePath)),
  );
  for (const relative of removed) {
    logger.info(`${relative}: removed from the destination, it is not a requested file`);
  }
  // The state names what this run verified; until it is written again there is none.
  await fs.rm(path.join(settings.destination, LOCK_FILE), { force: true });

  const engine = {
    hashes: new WorkerHashRunner(),
    pool: new SlabPool(SLAB_SIZE),
    collector: YoungGenerationCollector.create(),
  };
  const cached: FetchedFile[] = [];
  const pending: Array<{ target: Target; reason?: string }> = [];
  let downloaded: FetchedFile[];
  const temps = new Map<Target, string>();
  try {
    const verdicts = await mapLimited(targets, VERIFY_CONCURRENCY, (target) =>
      checkLocalFile(
        target.finalPath,
        target.object,
        target.expectedSha256,
        settings.verifyMd5,
        engine,
      ),
    );
    for (const [index, verdict] of verdicts.entries()) {
      const target = targets[index];
      const hashed = `re-hashed ${formatBytes(target.object.size)} in ${verdict.hashMilliseconds} ms`;
      if (verdict.keep) {
        logger.info(
          `${target.relativePath}: already in place, its bytes match ${verdict.verifiedBy} ` +
            `(${hashed}; sha256 ${verdict.sha256})`,
        );
        cached.push(
          toFetchedFile(
            target,
            verdict.sha256,
            'cached',
            0,
            0,
            { md5: false, sha256: false },
            {
              verifiedBy: verdict.verifiedBy,
              hashMilliseconds: verdict.hashMilliseconds,
            },
          ),
        );
        continue;
      }
      if (verdict.reason === 'not in place') {
        pending.push({ target });
        continue;
      }
      const cost = verdict.hashMilliseconds > 0 ? ` (${hashed})` : '';
      logger.info(`${target.relativePath}: downloading again: ${verdict.reason}${cost}`);
      pending.push({ target, reason: verdict.reason });
    }
    for (const { target } of pending) checkMd5Available(target.object, settings);

    const limiter = new Limiter(settings.concurrency);
    try {
      downloaded = await mapLimited(pending, settings.concurrency, async ({ target, reason }) => {
        await fs.mkdir(path.dirname(target.finalPath), { recursive: true });
        const temp = path.join(
          path.dirname(target.finalPath),
          `.${path.basename(target.finalPath)}.partial-${randomBytes(4).toString('hex')}`,
        );
        temps.set(target, temp);
        const file = await downloadOne(
          target,
          temp,
          store,
          limiter,
          settings,
          logger,
          engine,
          options,
        );
        return { ...file, redownloadReason: reason };
      });
    } catch (error) {
      await Promise.all([...temps.values()].map(removePartial));
      throw error;
    }
  } finally {
    await engine.hashes.close();
  }
  try {
    for (const [index, file] of downloaded.entries()) {
      const temp = temps.get(pending[index].target)!;
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
    removed,
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

  const state = entries.find((entry) => entry.relativePath === LOCK_FILE);
  if (state) {
    throw new ConfigurationError(
      `Blob '${state.object.name}' would be written to ${LOCK_FILE}, the name of fetch-model's ` +
        `state file in 'path'. Rename the blob, or fetch it with a prefix that places it elsewhere.`,
    );
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
  engine: Pick<DownloadSettings, 'hashes' | 'pool' | 'collector'>,
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
      ...engine,
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
  kept?: { verifiedBy: string; hashMilliseconds: number },
): FetchedFile {
  const { object } = target;
  return {
    ...kept,
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
