import { createHash, type Hash } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { InlineHashRunner, type HashRunner } from '../../common/hash-workers';
import { SlabPool } from '../../common/slab-pool';
import { digestMismatch, EMPTY_SHA256, openModelFile, type ModelFile } from '../model-files';

const BLOCK = 512;
/** Bytes per slab of the layer digest: one message to each hash worker per slab. */
const SLAB_SIZE = 4 * 1024 * 1024;
/**
 * Slabs handed to the hashes and not yet done with: reading the next overlaps hashing. The
 * digest's memory is at most one more slab than this.
 */
export const SLABS_IN_FLIGHT = 4;
/** A fixed modification time for every entry, so the same files always give the same bytes. */
export const LAYER_MTIME = 0;

type SegmentBody =
  | { length: number; kind: 'bytes'; data: Buffer }
  | { length: number; kind: 'zeros' }
  | { length: number; kind: 'file'; file: ModelFile };
type Segment = SegmentBody & { offset: number };

/** The sha256 check of one file, advanced by whichever read reaches its next bytes first. */
interface FileCheck {
  hash: Hash;
  /** Bytes hashed so far, from the file's start. */
  position: number;
  verified: boolean;
  failure?: Error;
}

/**
 * The model as one uncompressed tar layer, reproducible byte for byte: entries sorted, the
 * destination's parent directories first, uid/gid 0, fixed mtime, modes 0755/0644. Its size is
 * known before a byte is read, and any byte range can be streamed again, which is what lets an
 * interrupted upload resume mid-layer. Each file's sha256 is checked the first time its bytes
 * are read (by `digest` or `read`), in the same pass: a file that does not match fails the
 * digest, or the read before its last chunk is handed out, so a layer holding it is never
 * completed.
 */
export class TarLayer {
  private readonly segments: Segment[] = [];
  private readonly checks = new Map<ModelFile, FileCheck>();
  readonly size: number;

  constructor(
    readonly files: ModelFile[],
    /** Absolute directory in the image, e.g. /app/model. */
    readonly destination: string,
  ) {
    let offset = 0;
    const push = (segment: SegmentBody) => {
      if (segment.length > 0) {
        this.segments.push({ ...segment, offset });
        offset += segment.length;
      }
    };
    const root = destination.replace(/^\/+|\/+$/g, '');
    const directories = new Set<string>();
    const addDirectory = (dir: string) => {
      const parts = dir.split('/').filter(Boolean);
      for (let i = 1; i <= parts.length; i++) {
        const name = parts.slice(0, i).join('/');
        if (directories.has(name)) continue;
        directories.add(name);
        const header = entryHeader(`${name}/`, 0, 0o755, '5');
        push({ kind: 'bytes', length: header.length, data: header });
      }
    };
    addDirectory(root);
    for (const file of files) {
      this.checks.set(file, {
        hash: createHash('sha256'),
        position: 0,
        verified: file.size === 0 && file.sha256 === EMPTY_SHA256,
        // An empty file is never read: it matches only the sha256 of no bytes.
        failure:
          file.size === 0 && file.sha256 !== EMPTY_SHA256
            ? digestMismatch(file, EMPTY_SHA256)
            : undefined,
      });
      const name = `${root}/${file.relative}`;
      addDirectory(name.split('/').slice(0, -1).join('/'));
      const header = entryHeader(name, file.size, file.executable ? 0o755 : 0o644, '0');
      push({ kind: 'bytes', length: header.length, data: header });
      push({ kind: 'file', length: file.size, file });
      push({ kind: 'zeros', length: (BLOCK - (file.size % BLOCK)) % BLOCK });
    }
    push({ kind: 'zeros', length: 2 * BLOCK });
    this.size = offset;
  }

  /**
   * The bytes from `start` (inclusive) to `end` (exclusive), read as they are needed. With
   * `reuse`, file bytes come in one buffer that the next chunk overwrites, for a consumer done
   * with each chunk before it asks for the next (a hash, or a request body: the transport
   * hands each chunk to the socket before it asks for another): fresh memory costs the kernel
   * a page fault per page, about a second of system time per GiB here.
   */
  async *read(
    start = 0,
    end = this.size,
    chunkSize = 4 * 1024 * 1024,
    reuse = false,
  ): AsyncGenerator<Buffer> {
    for (const segment of this.segments) {
      const from = Math.max(start, segment.offset);
      const to = Math.min(end, segment.offset + segment.length);
      if (from >= to) continue;
      const within = from - segment.offset;
      if (segment.kind === 'bytes') {
        yield segment.data.subarray(within, within + (to - from));
      } else if (segment.kind === 'zeros') {
        yield Buffer.alloc(to - from);
      } else {
        yield* this.readFile(segment.file, within, within + (to - from), chunkSize, reuse);
      }
    }
  }

  /**
   * The layer's digest, `sha256:<hex>`, computed by reading it whole and checking every file not
   * checked yet. Each file is read once into a few reused shared slabs; the same slab goes to
   * the file's sha256 check and to the layer's digest, which on `hashes`' worker threads run side
   * by side. Resolves only once every file matched: the first file that does not rejects it (and
   * stops the reading) with the error `read` would give.
   */
  async digest(
    hashes: HashRunner = new InlineHashRunner(),
    pool = new SlabPool(SLAB_SIZE),
  ): Promise<string> {
    const layerHash = hashes.open('sha256', this.size);
    /** Per slab handed to the hashes, its release once every hash is done with it. */
    const inFlight: Array<Promise<void>> = [];
    const fileChecks: Array<Promise<void>> = [];
    let slab = pool.acquire();
    let filled = 0;
    /** File-check updates reading the current slab. */
    let onSlab: Array<Promise<void>> = [];

    const handOver = async () => {
      if (filled === 0) return;
      const full = slab;
      const done = settled([...onSlab, layerHash.update(full.subarray(0, filled))]).finally(() =>
        pool.release(full),
      );
      // Awaited below or in the end; a failure while an earlier slab is awaited must not go unhandled.
      done.catch(() => undefined);
      inFlight.push(done);
      slab = pool.acquire();
      filled = 0;
      onSlab = [];
      if (inFlight.length >= SLABS_IN_FLIGHT) await inFlight.shift();
    };
    const copy = async (data: Buffer | undefined, length: number) => {
      for (let at = 0; at < length;) {
        if (filled === slab.length) await handOver();
        const take = Math.min(length - at, slab.length - filled);
        if (data) data.copy(slab, filled, at, at + take);
        else slab.fill(0, filled, filled + take);
        filled += take;
        at += take;
      }
    };
    const readFile = async (file: ModelFile) => {
      const check = this.checks.get(file)!;
      if (check.failure) throw check.failure;
      const fileHash = check.verified ? undefined : hashes.open('sha256', file.size);
      const updates: Array<Promise<void>> = [];
      const handle = await openModelFile(file);
      try {
        for (let position = 0; position < file.size;) {
          // A file already found not to match ends the reading.
          const failure = this.failure;
          if (failure) throw failure;
          if (filled === slab.length) await handOver();
          const length = Math.min(slab.length - filled, file.size - position);
          const { bytesRead } = await handle.read(slab, filled, length, position);
          if (bytesRead === 0) throw changedWhileRead(file);
          if (fileHash) {
            const update = fileHash.update(slab.subarray(filled, filled + bytesRead));
            update.catch(() => undefined);
            updates.push(update);
            onSlab.push(update);
          }
          filled += bytesRead;
          position += bytesRead;
        }
      } finally {
        await handle.close();
      }
      if (!fileHash) return;
      const checked = settled(updates)
        .then(() => fileHash.digest())
        .then((actual) => {
          if (actual === file.sha256) check.verified = true;
          else throw (check.failure = digestMismatch(file, actual));
        });
      checked.catch(() => undefined);
      fileChecks.push(checked);
    };

    let stopped: { error: unknown } | undefined;
    try {
      for (const segment of this.segments) {
        if (segment.kind === 'file') await readFile(segment.file);
        else await copy(segment.kind === 'bytes' ? segment.data : undefined, segment.length);
      }
      await handOver();
    } catch (error) {
      stopped = { error };
    }
    // Nothing may still read a slab, or a file check still run, once this returns.
    const outcomes = await Promise.allSettled([...inFlight, ...fileChecks]);
    // A file that does not match is the verdict, whatever else went wrong.
    const failure = this.failure;
    if (failure) throw failure;
    if (stopped) throw stopped.error;
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed) throw failed.reason;
    return `sha256:${await layerHash.digest()}`;
  }

  /** The first file that failed its sha256 check, if any did. */
  get failure(): Error | undefined {
    for (const check of this.checks.values()) if (check.failure) return check.failure;
    return undefined;
  }

  /** Whether every file's bytes have been read and matched their sha256. */
  get verified(): boolean {
    return [...this.checks.values()].every((check) => check.verified);
  }

  private async *readFile(
    file: ModelFile,
    start: number,
    end: number,
    chunkSize: number,
    reuse: boolean,
  ): AsyncGenerator<Buffer> {
    const check = this.checks.get(file)!;
    if (check.failure) throw check.failure;
    const handle = await openModelFile(file);
    const shared = reuse ? Buffer.allocUnsafe(Math.min(chunkSize, end - start)) : undefined;
    try {
      for (let position = start; position < end;) {
        const length = Math.min(chunkSize, end - position);
        const buffer = shared ? shared.subarray(0, length) : Buffer.allocUnsafe(length);
        const { bytesRead } = await handle.read(buffer, 0, buffer.length, position);
        if (bytesRead === 0) throw changedWhileRead(file);
        const chunk = buffer.subarray(0, bytesRead);
        await this.advance(file, check, handle, position, chunk);
        position += bytesRead;
        yield chunk;
      }
    } finally {
      await handle.close();
    }
  }

  /** Feeds the file's check with the bytes at `position` it has not hashed yet; throws on a mismatch. */
  private async advance(
    file: ModelFile,
    check: FileCheck,
    handle: FileHandle,
    position: number,
    chunk: Buffer,
  ): Promise<void> {
    if (check.verified) return;
    while (position > check.position) {
      // A read that starts past the hashed bytes: hash the gap first.
      const gap = Buffer.allocUnsafe(Math.min(4 * 1024 * 1024, position - check.position));
      const { bytesRead } = await handle.read(gap, 0, gap.length, check.position);
      if (bytesRead === 0) return;
      check.hash.update(gap.subarray(0, bytesRead));
      check.position += bytesRead;
    }
    const fresh = position + chunk.length - check.position;
    if (fresh <= 0) return;
    check.hash.update(chunk.subarray(chunk.length - fresh));
    check.position += fresh;
    if (check.position < file.size) return;
    const actual = check.hash.digest('hex');
    if (actual === file.sha256) {
      check.verified = true;
      return;
    }
    check.failure = digestMismatch(file, actual);
    throw check.failure;
  }
}

/** Waits for every promise, then rejects with the first failure, if any. */
async function settled(promises: Array<Promise<unknown>>): Promise<void> {
  const results = await Promise.allSettled(promises);
  const failed = results.find((result) => result.status === 'rejected');
  if (failed) throw failed.reason;
}

function changedWhileRead(file: ModelFile): Error {
  return new Error(
    `${file.absolute} changed while the layer was being written (expected ${file.size} bytes)`,
  );
}

/** A ustar header (preceded by a PAX header when the name does not fit ustar's fields). */
function entryHeader(name: string, size: number, mode: number, type: '0' | '5'): Buffer {
  const split = splitName(name);
  if (split) return ustarHeader(split.name, split.prefix, size, mode, type);
  const record = paxRecord('path', name);
  const pax = ustarHeader('PaxHeaders/entry', '', record.length, 0o644, 'x');
  const padding = Buffer.alloc((BLOCK - (record.length % BLOCK)) % BLOCK);
  return Buffer.concat([pax, record, padding, ustarHeader('', '', size, mode, type, name)]);
}

/** ustar keeps up to 100 bytes of name plus a 155-byte prefix split at a '/'. */
function splitName(name: string): { name: string; prefix: string } | undefined {
  const bytes = Buffer.byteLength(name);
  if (bytes <= 100) return { name, prefix: '' };
  for (let at = name.indexOf('/'); at >= 0; at = name.indexOf('/', at + 1)) {
    const prefix = name.slice(0, at);
    const rest = name.slice(at + 1);
    if (Buffer.byteLength(prefix) <= 155 && Buffer.byteLength(rest) <= 100 && rest !== '') {
      return { name: rest, prefix };
    }
  }
  return undefined;
}

function paxRecord(key: string, value: string): Buffer {
  const body = ` ${key}=${value}\n`;
  let length = Buffer.byteLength(body);
  let total = length + String(length).length;
  while (String(total).length + Buffer.byteLength(body) !== total) {
    length = String(total).length + Buffer.byteLength(body);
    total = length;
  }
  return Buffer.from(`${total}${body}`);
}

function ustarHeader(
  name: string,
  prefix: string,
  size: number,
  mode: number,
  type: string,
  longName?: string,
): Buffer {
  const header = Buffer.alloc(BLOCK);
  // With a PAX path record, the ustar name is a truncated fallback for old readers.
  header.write(longName ? longName.slice(-99) : name, 0, 100, 'utf8');
  octal(header, 100, 8, mode);
  octal(header, 108, 8, 0);
  octal(header, 116, 8, 0);
  if (size < 8 ** 11) octal(header, 124, 12, size);
  else {
    // GNU base-256 for sizes of 8 GiB and more, which Go's archive/tar (docker) reads.
    header[124] = 0x80;
    let value = BigInt(size);
    for (let i = 135; i > 124; i--) {
      header[i] = Number(value & 0xffn);
      value >>= 8n;
    }
  }
  octal(header, 136, 12, LAYER_MTIME);
  header.fill(0x20, 148, 156);
  header.write(type, 156, 1, 'latin1');
  header.write('ustar\u0000', 257, 6, 'latin1');
  header.write('00', 263, 2, 'latin1');
  header.write('root', 265, 32, 'latin1');
  header.write('root', 297, 32, 'latin1');
  header.write(prefix, 345, 155, 'utf8');
  let checksum = 0;
  for (const byte of header) checksum += byte;
  header.write(`${checksum.toString(8).padStart(6, '0')}\u0000 `, 148, 8, 'latin1');
  return header;
}

function octal(header: Buffer, offset: number, length: number, value: number): void {
  header.write(`${value.toString(8).padStart(length - 1, '0')}\u0000`, offset, length, 'latin1');
}
