import { constants, promises as fs } from 'node:fs';
import type { HashRunner } from '../common/hash-workers';
import type { VerifyMd5 } from './inputs';
import type { SlabPool } from '../common/slab-pool';
import type { RemoteObject } from './store';

/**
 * Whether a file already in the destination may stand for a blob. The destination may have been
 * restored from an Actions cache, which any workflow of the repository can write, so neither
 * the file's size and mtime nor the state file beside it prove anything: a file is kept only
 * when its bytes, hashed now, match a digest from outside the cache. That is the `sha256` input,
 * or a digest the storage service keeps for this exact blob version (S3's full-object
 * x-amz-checksum-sha256, Azure's Content-MD5, or the ETag of an S3 single-part upload, which
 * is its MD5). A CRC, or an ETag that is not an MD5, is not enough: forging bytes to match one
 * is easy. Everything else is downloaded again, and the reason says why.
 */
export type LocalVerdict =
  | { keep: true; sha256: string; verifiedBy: string; hashMilliseconds: number }
  | { keep: false; reason: string; hashMilliseconds: number };

/** A digest a local file is checked against, and the algorithms needed to check it. */
interface Anchor {
  description: string;
  algorithms: string[];
  matches: (digests: Record<string, string>) => boolean;
}

/** The digest from outside the cache that vouches for `object`'s bytes, if there is one. */
function anchorFor(
  object: RemoteObject,
  expectedSha256: string | undefined,
  verifyMd5: VerifyMd5,
): Anchor | undefined {
  if (expectedSha256) {
    return {
      description: "the 'sha256' input",
      algorithms: ['sha256'],
      matches: (digests) => digests.sha256 === expectedSha256,
    };
  }
  if (object.checksumSha256) {
    return {
      description: 'the stored SHA-256 checksum',
      algorithms: ['sha256'],
      matches: (digests) => base64(digests.sha256) === object.checksumSha256,
    };
  }
  if (object.contentMd5 && verifyMd5 !== 'off') {
    return {
      description: `the ${object.md5Source ?? 'Content-MD5'} the service stores`,
      algorithms: ['sha256', 'md5'],
      matches: (digests) => base64(digests.md5) === object.contentMd5,
    };
  }
  return undefined;
}

/** Decides whether the regular file at `file` (not a link: the caller checked) is `object`. */
export async function checkLocalFile(
  file: string,
  object: RemoteObject,
  expectedSha256: string | undefined,
  verifyMd5: VerifyMd5,
  engine: { hashes: HashRunner; pool: SlabPool },
): Promise<LocalVerdict> {
  let size: number;
  try {
    size = (await fs.lstat(file)).size;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      return { keep: false, reason: 'not in place', hashMilliseconds: 0 };
    }
    throw error;
  }
  if (size !== object.size) {
    return {
      keep: false,
      reason: `the local file has ${size} bytes, the blob ${object.size}`,
      hashMilliseconds: 0,
    };
  }
  const anchor = anchorFor(object, expectedSha256, verifyMd5);
  if (!anchor) {
    const md5 =
      object.contentMd5 && verifyMd5 === 'off'
        ? 'verify-md5 is off'
        : 'the service stores no MD5 or SHA-256 for it';
    return {
      keep: false,
      reason:
        `no digest from outside the cache vouches for the local file (no 'sha256' input, and ` +
        `${md5}); pin its sha256 to keep it across runs`,
      hashMilliseconds: 0,
    };
  }
  const started = Date.now();
  const digests = await hashLocalFile(file, anchor.algorithms, engine, size);
  const hashMilliseconds = Date.now() - started;
  if (!anchor.matches(digests)) {
    return {
      keep: false,
      reason: `the local file's bytes do not match ${anchor.description}`,
      hashMilliseconds,
    };
  }
  return { keep: true, sha256: digests.sha256, verifiedBy: anchor.description, hashMilliseconds };
}

/** Slab reads kept in flight while hashing a file: reading the next one overlaps hashing. */
const READS_AHEAD = 4;

/**
 * Hex digests of a file, each algorithm on its own hash (worker threads, side by side), read
 * in pooled slabs. Refuses to follow a symbolic link put in place since the destination was
 * checked.
 */
export async function hashLocalFile(
  file: string,
  algorithms: string[],
  engine: { hashes: HashRunner; pool: SlabPool },
  size?: number,
): Promise<Record<string, string>> {
  const handle = await fs.open(file, constants.O_RDONLY | constants.O_NOFOLLOW);
  const hashes = algorithms.map((algorithm) => engine.hashes.open(algorithm, size));
  const inFlight: Array<Promise<unknown>> = [];
  try {
    for (let position = 0; ;) {
      const slab = engine.pool.acquire();
      const { bytesRead } = await handle.read(slab, 0, slab.length, position);
      if (bytesRead === 0) {
        engine.pool.release(slab);
        break;
      }
      position += bytesRead;
      const view = slab.subarray(0, bytesRead);
      const hashed = Promise.all(hashes.map((hash) => hash.update(view))).finally(() =>
        engine.pool.release(slab),
      );
      // Awaited below; a failure while an earlier slab is awaited must not go unhandled.
      hashed.catch(() => undefined);
      inFlight.push(hashed);
      if (inFlight.length >= READS_AHEAD) await inFlight.shift();
    }
    await Promise.all(inFlight);
  } finally {
    await handle.close();
  }
  const digests = await Promise.all(hashes.map((hash) => hash.digest()));
  return Object.fromEntries(algorithms.map((algorithm, i) => [algorithm, digests[i]]));
}

function base64(hex: string | undefined): string | undefined {
  return hex === undefined ? undefined : Buffer.from(hex, 'hex').toString('base64');
}
