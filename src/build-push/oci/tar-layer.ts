import { createReadStream } from 'node:fs';
import type { ModelFile } from '../model-files';

const BLOCK = 512;
/** A fixed modification time for every entry, so the same files always give the same bytes. */
export const LAYER_MTIME = 0;

type SegmentBody =
  | { length: number; kind: 'bytes'; data: Buffer }
  | { length: number; kind: 'zeros' }
  | { length: number; kind: 'file'; file: ModelFile };
type Segment = SegmentBody & { offset: number };

/**
 * The model as one uncompressed tar layer, reproducible byte for byte: entries sorted, the
 * destination's parent directories first, uid/gid 0, fixed mtime, modes 0755/0644. Its size is
 * known before a byte is read, and any byte range can be streamed again, which is what lets an
 * interrupted upload resume mid-layer.
 */
export class TarLayer {
  private readonly segments: Segment[] = [];
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

  /** The bytes from `start` (inclusive) to `end` (exclusive), read as they are needed. */
  async *read(start = 0, end = this.size, chunkSize = 4 * 1024 * 1024): AsyncGenerator<Buffer> {
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
        let read = 0;
        const stream = createReadStream(segment.file.absolute, {
          start: within,
          end: within + (to - from) - 1,
          highWaterMark: chunkSize,
        });
        for await (const chunk of stream) {
          read += (chunk as Buffer).length;
          yield chunk as Buffer;
        }
        if (read !== to - from) {
          throw new Error(
            `${segment.file.absolute} changed while the layer was being written ` +
              `(expected ${segment.file.size} bytes)`,
          );
        }
      }
    }
  }
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
