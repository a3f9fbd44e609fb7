import type { Readable } from 'node:stream';

/**
 * A response body handed to its reader piece by piece, as the connection delivers it. Large
 * downloads read bodies this way: the transport's bulk GET (bulk-get.ts) delivers decrypted
 * bytes from one reused buffer per connection, with no stream machinery per TLS record.
 */
export interface BodySource {
  /**
   * Hands each piece of the body to `onChunk`, in order, and resolves at the body's end. A
   * piece is valid only during the call (the connection reads the next one into the same
   * memory): copy what must outlive it. `onChunk` returning `false` stops the body (its
   * connection is closed) and resolves; `onChunk` throwing rejects with that error. Rejects
   * when the connection drops, stalls past its idle timeout or is aborted before the end.
   * Call once.
   *
   * `into`, when given, says where the next body bytes should land: the connection may read
   * them straight into that memory, and `onChunk` then gets a view of it, which spares the
   * reader a copy. It is a hint: pieces may come from elsewhere too.
   */
  drain(onChunk: (chunk: Buffer) => boolean | void, into?: () => Buffer): Promise<void>;
  /** Abandons the body; its connection is closed. */
  destroy(): void;
}

/** A body from a Node stream (a plain-http response, a test's in-memory store). */
export function streamBody(stream: Readable): BodySource {
  return {
    destroy: () => stream.destroy(),
    drain: (onChunk) =>
      new Promise((resolve, reject) => {
        let settled = false;
        const finish = (error?: unknown) => {
          if (settled) return;
          settled = true;
          stream.removeListener('data', onData);
          if (error === undefined) resolve();
          else reject(error);
        };
        const onData = (chunk: Buffer) => {
          let more: boolean | void;
          try {
            more = onChunk(chunk);
          } catch (error) {
            stream.destroy();
            finish(error);
            return;
          }
          if (more === false) {
            stream.destroy();
            finish();
          }
        };
        stream.on('data', onData);
        stream.once('end', () => finish());
        stream.once('error', (error) => finish(error));
        stream.once('close', () => finish(prematureClose()));
      }),
  };
}

/** Reads a (small) body whole, as for an error answer; refuses bodies over `limit` bytes. */
export async function readSource(source: BodySource, limit = 64 * 1024): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  await source.drain((chunk) => {
    length += chunk.length;
    if (length > limit) throw new Error(`response body exceeds ${limit} bytes`);
    chunks.push(Buffer.from(chunk));
  });
  return Buffer.concat(chunks);
}

/** The error of a body whose connection closed before its end: transient, worth a retry. */
export function prematureClose(): NodeJS.ErrnoException {
  return Object.assign(new Error('connection closed before the body ended'), {
    code: 'ERR_STREAM_PREMATURE_CLOSE',
  });
}
