import { promises as fs, unlinkSync } from 'node:fs';
import type { Limiter } from '../common/limiter';
import type { Logger } from '../common/logger';
import { backoffDelay, errorCodeOf, isTransient, sleep, type RetryPolicy } from '../common/retry';
import { OrderedDigest } from './ordered-digest';
import { planRanges, type ByteRange } from './ranges';
import type { ObjectStore, RemoteObject } from './store';

export interface DownloadSettings {
  /** Size of each ranged GET. */
  blockSize: number;
  /** How far past the hash position a range may start; bounds buffered memory. */
  windowBytes: number;
  retry: RetryPolicy;
  /** Also compute MD5 (to check the service's Content-MD5). */
  md5: boolean;
}

export interface DownloadResult {
  sha256: string;
  /** Base64, like Content-MD5; only when asked for. */
  md5?: string;
  bytes: number;
  /** Ranged reads that were retried after a dropped connection or a 5xx. */
  retries: number;
}

/** Receives byte counts as they arrive, for progress lines. */
export type ProgressListener = (bytes: number) => void;

/** Temporary files not yet renamed into place; removed if the process is told to stop. */
export const partialFiles = new Set<string>();

let cleanupInstalled = false;
function installSignalCleanup(): void {
  if (cleanupInstalled) return;
  cleanupInstalled = true;
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      for (const file of partialFiles) {
        try {
          unlinkSync(file);
        } catch {
          // Already gone.
        }
      }
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  }
}

/** Writes coalesce into calls of about this many bytes. */
const WRITE_BATCH = 1024 * 1024;

/**
 * Downloads `object` into `tempPath` with parallel ranged GETs (at most `limiter.limit` at
 * once across all files), each pinned to the object's ETag. Bytes go to their place in the
 * file as they arrive and through SHA-256 in order. A range that fails on a transient error
 * resumes from the bytes it already has. On any failure the temporary file is removed.
 */
export async function downloadObject(
  store: ObjectStore,
  object: RemoteObject,
  tempPath: string,
  limiter: Limiter,
  settings: DownloadSettings,
  logger: Logger,
  onProgress: ProgressListener,
): Promise<DownloadResult> {
  installSignalCleanup();
  const file = await fs.open(tempPath, 'wx', 0o644);
  partialFiles.add(tempPath);
  const digest = new OrderedDigest(settings.md5 ? ['sha256', 'md5'] : ['sha256']);
  let failed: unknown;
  let signalAbort: () => void = () => undefined;
  const aborted = new Promise<void>((resolve) => (signalAbort = resolve));
  let retries = 0;

  const fetchRange = async (range: ByteRange): Promise<void> => {
    const length = range.end - range.start + 1;
    let received = 0;
    let written = 0;
    let batch: Buffer[] = [];
    let batchBytes = 0;
    let failuresWithoutProgress = 0;
    const flush = async () => {
      if (batchBytes === 0) return;
      const buffers = batch;
      const position = range.start + written;
      batch = [];
      written += batchBytes;
      batchBytes = 0;
      await writeAll(file, buffers, position);
    };
    while (received < length) {
      const receivedBefore = received;
      try {
        const stream = await store.openRange(object, range.start + received, range.end);
        for await (const chunk of stream as AsyncIterable<Buffer>) {
          if (failed !== undefined) {
            stream.destroy();
            return;
          }
          digest.push(range.start + received, chunk);
          received += chunk.length;
          onProgress(chunk.length);
          batch.push(chunk);
          batchBytes += chunk.length;
          if (batchBytes >= WRITE_BATCH) await flush();
        }
        await flush();
        if (received < length) {
          throw Object.assign(new Error('connection closed before the range ended'), {
            code: 'ERR_STREAM_PREMATURE_CLOSE',
          });
        }
      } catch (error) {
        // Bytes that arrived before the failure are good: keep them and resume after them.
        await flush();
        if (failed !== undefined) return;
        if (!isTransient(error)) throw error;
        failuresWithoutProgress = received > receivedBefore ? 1 : failuresWithoutProgress + 1;
        if (failuresWithoutProgress >= settings.retry.maxAttempts) throw error;
        retries++;
        const delay = backoffDelay(
          failuresWithoutProgress - 1,
          settings.retry,
          retryAfterOf(error),
        );
        logger.info(
          `${object.name}: range ${range.start}-${range.end} interrupted at byte ` +
            `${range.start + received} (${errorCodeOf(error)}); resuming in ${delay} ms`,
        );
        await sleep(delay);
      }
    }
  };

  try {
    const ranges = planRanges(object.size, settings.blockSize);
    await Promise.all(
      ranges.map(async (range) => {
        await Promise.race([digest.reached(range.end + 1 - settings.windowBytes), aborted]);
        if (failed !== undefined) return;
        await limiter.run(async () => {
          if (failed !== undefined) return;
          try {
            await fetchRange(range);
          } catch (error) {
            if (failed === undefined) failed = error;
            signalAbort();
          }
        });
      }),
    );
    if (failed !== undefined) throw failed;
    if (digest.hashedBytes !== object.size) {
      throw new Error(
        `'${object.name}': received ${digest.hashedBytes} of ${object.size} bytes in order.`,
      );
    }
    await file.close();
    const [sha256, md5] = digest.digests();
    return {
      sha256,
      md5: md5 === undefined ? undefined : Buffer.from(md5, 'hex').toString('base64'),
      bytes: object.size,
      retries,
    };
  } catch (error) {
    await file.close().catch(() => undefined);
    await removePartial(tempPath);
    throw error;
  }
}

/** Removes a temporary file, ignoring one that is already gone. */
export async function removePartial(tempPath: string): Promise<void> {
  await fs.rm(tempPath, { force: true });
  partialFiles.delete(tempPath);
}

async function writeAll(file: fs.FileHandle, buffers: Buffer[], position: number): Promise<void> {
  let offset = position;
  let pending = buffers;
  while (pending.length > 0) {
    const { bytesWritten } = await file.writev(pending, offset);
    offset += bytesWritten;
    pending = dropBytes(pending, bytesWritten);
  }
}

function dropBytes(buffers: Buffer[], count: number): Buffer[] {
  const rest: Buffer[] = [];
  let skip = count;
  for (const buffer of buffers) {
    if (skip >= buffer.length) {
      skip -= buffer.length;
      continue;
    }
    rest.push(skip > 0 ? buffer.subarray(skip) : buffer);
    skip = 0;
  }
  return rest;
}

function retryAfterOf(error: unknown): number | undefined {
  return (error as { retryAfterMs?: number }).retryAfterMs;
}
