import { promises as fs, unlinkSync, writeSync } from 'node:fs';
import type { Limiter } from '../common/limiter';
import type { Logger } from '../common/logger';
import { backoffDelay, errorCodeOf, isTransient, sleep, type RetryPolicy } from '../common/retry';
import { InlineHashRunner, type HashRunner } from '../common/hash-workers';
import { OrderedDigest } from './ordered-digest';
import { SlabPool } from '../common/slab-pool';
import type { YoungGenerationCollector } from './young-gc';
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
  /** Where hashing runs; this thread when unset. */
  hashes?: HashRunner;
  /** Slabs shared by every file of one fetch; a pool of this download's own when unset. */
  pool?: SlabPool;
  /** Frees dead network buffers as the download goes; V8 decides alone when unset. */
  collector?: YoungGenerationCollector;
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

/** Bytes per slab: one hash update (one message to a hash worker) each. */
export const SLAB_SIZE = 1024 * 1024;
/**
 * Bytes per write call: a slab is written in pieces this size as it fills, while they are still
 * in the CPU's cache. Small writes are far cheaper for the kernel to copy into the page cache
 * than large ones where the page cache uses large folios (Linux 6.x ext4): writing 1 GiB as
 * 1 MiB writes cost 2.8 s in copy_folio_from_iter_atomic on this project's machine, as 16 KiB
 * writes 0.08 s, as 32 KiB writes 0.16 s. Larger pieces would save syscalls and cost more.
 */
const WRITE_SIZE = 32 * 1024;

/**
 * Downloads `object` into `tempPath` with parallel ranged GETs (at most `limiter.limit` at
 * once across all files), each pinned to the object's ETag. Each chunk is written to its place
 * in the file as it arrives, and copied into a pooled slab; full slabs are hashed (SHA-256, and
 * MD5 when asked) in file order, on worker threads when `settings.hashes` runs there. A range that
 * fails on a transient error resumes from the bytes it already has. On any failure the
 * temporary file is removed.
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
  const runner = settings.hashes ?? new InlineHashRunner();
  const pool = settings.pool ?? new SlabPool(Math.min(settings.blockSize, SLAB_SIZE));
  const algorithms = settings.md5 ? ['sha256', 'md5'] : ['sha256'];
  const digest = new OrderedDigest(
    algorithms.map((algorithm) => runner.open(algorithm, object.size)),
  );
  let failed: unknown;
  let signalAbort: () => void = () => undefined;
  const aborted = new Promise<void>((resolve) => (signalAbort = resolve));
  let retries = 0;

  const fetchRange = async (range: ByteRange): Promise<void> => {
    const length = range.end - range.start + 1;
    let received = 0;
    let slab: Buffer | undefined;
    let slabFill = 0;
    let slabStart = 0;
    let failuresWithoutProgress = 0;

    /** Bytes of the current slab already written to the file. */
    let slabWritten = 0;

    /** The slab the next bytes go to: a fresh one from the pool once the last was handed on. */
    const currentSlab = (): Buffer => {
      if (!slab) {
        slab = pool.acquire();
        slabFill = 0;
        slabWritten = 0;
        slabStart = range.start + received;
      }
      return slab;
    };
    /** Writes what the slab holds beyond what was written, while it is still in the cache. */
    const writeSlab = () => {
      writeFully(file.fd, slab!, slabWritten, slabFill - slabWritten, slabStart + slabWritten);
      slabWritten = slabFill;
    };
    /** Hands a filled slab (or the range's last, partial one) to the hashes. */
    const completeSlab = () => {
      const full = slab!;
      slab = undefined;
      digest.push(slabStart, full.subarray(0, slabFill), () => pool.release(full));
    };
    const consume = (chunk: Buffer) => {
      const usable = Math.min(chunk.length, length - received);
      for (let at = 0; at < usable;) {
        const target = currentSlab();
        const count = Math.min(usable - at, target.length - slabFill);
        // Bytes the connection read straight into the slab (see `into`) are already there.
        if (!readInPlace(chunk, at, target, slabFill)) chunk.copy(target, slabFill, at, at + count);
        slabFill += count;
        at += count;
        received += count;
        const full = slabFill === target.length || received === length;
        if (full || slabFill - slabWritten >= WRITE_SIZE) writeSlab();
        if (full) completeSlab();
      }
      settings.collector?.received(usable);
      onProgress(usable);
    };

    /** The free part of the current slab (a new one if none), where the next bytes belong. */
    const into = (): Buffer => {
      if (received >= length) return Buffer.alloc(0);
      const target = currentSlab();
      return target.subarray(
        slabFill,
        slabFill + Math.min(target.length - slabFill, length - received),
      );
    };

    while (received < length) {
      const receivedBefore = received;
      try {
        const body = await store.openRange(object, range.start + received, range.end);
        // Another range failed: this one stops where it is (its connection is closed).
        await body.drain((chunk) => (failed !== undefined ? false : consume(chunk)), into);
        if (failed !== undefined) return;
        if (received < length) {
          throw Object.assign(new Error('connection closed before the range ended'), {
            code: 'ERR_STREAM_PREMATURE_CLOSE',
          });
        }
      } catch (error) {
        // Bytes that arrived before the failure are good: keep them and resume after them.
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
        try {
          await Promise.race([digest.reached(range.end + 1 - settings.windowBytes), aborted]);
          if (failed !== undefined) return;
          await limiter.run(async () => {
            if (failed === undefined) await fetchRange(range);
          });
        } catch (error) {
          if (failed === undefined) failed = error;
          signalAbort();
        }
      }),
    );
    if (failed !== undefined) throw failed;
    const digests = await digest.digests();
    if (digest.hashedBytes !== object.size) {
      throw new Error(
        `'${object.name}': received ${digest.hashedBytes} of ${object.size} bytes in order.`,
      );
    }
    await file.close();
    const [sha256, md5] = digests;
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

/**
 * Writes `length` bytes of `buffer` from `offset` at `position`, synchronously: a page-cache
 * write this small takes microseconds, as curl's do, and a thread-pool round trip would cost
 * more than the write. A disk that falls behind blocks the loop, which stops reading sockets:
 * that is the back-pressure.
 */
function writeFully(
  fd: number,
  buffer: Buffer,
  offset: number,
  length: number,
  position: number,
): void {
  for (let done = 0; done < length;) {
    done += writeSync(fd, buffer, offset + done, length - done, position + done);
  }
}

/** Whether `chunk` from `at` is the very memory of `slab` at `fill` (read there in place). */
function readInPlace(chunk: Buffer, at: number, slab: Buffer, fill: number): boolean {
  return chunk.buffer === slab.buffer && chunk.byteOffset + at === slab.byteOffset + fill;
}

/** Removes a temporary file, ignoring one that is already gone. */
export async function removePartial(tempPath: string): Promise<void> {
  await fs.rm(tempPath, { force: true });
  partialFiles.delete(tempPath);
}

function retryAfterOf(error: unknown): number | undefined {
  return (error as { retryAfterMs?: number }).retryAfterMs;
}
