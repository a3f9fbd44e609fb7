import { randomBytes } from 'node:crypto';
import * as tls from 'node:tls';
import { readSource } from '../../src/common/body-source';
import { bulkGet, type BulkResponse } from '../../src/common/bulk-get';
import { ConnectionPool, InsecureTransportError } from '../../src/common/http';
import { isTransient } from '../../src/common/retry';
import { listenOnLoopback } from '../support/ports';
import { localTls } from '../support/tls';

/**
 * A TLS server that answers each request head with what the test scripts, byte for byte: the
 * bulk GET parses HTTP/1.1 itself, so its tests need answers no well-behaved server library
 * would write (interim answers, chunk extensions, a close mid-body, a stall).
 */
class ScriptedServer {
  readonly connections: tls.TLSSocket[] = [];
  readonly requests: string[] = [];
  answer: (socket: tls.TLSSocket, head: string, index: number) => void = () => undefined;
  private server?: tls.Server;
  port = 0;

  async start(): Promise<void> {
    const { cert, key } = localTls();
    this.server = tls.createServer({ cert, key }, (socket) => {
      this.connections.push(socket);
      socket.on('error', () => undefined);
      let pending = '';
      socket.on('data', (chunk) => {
        pending += chunk.toString('latin1');
        for (let end = pending.indexOf('\r\n\r\n'); end >= 0; end = pending.indexOf('\r\n\r\n')) {
          const head = pending.slice(0, end);
          pending = pending.slice(end + 4);
          this.requests.push(head);
          this.answer(socket, head, this.requests.length - 1);
        }
      });
    });
    this.port = await listenOnLoopback(this.server);
  }

  url(path = '/blob'): URL {
    return new URL(`https://127.0.0.1:${this.port}${path}`);
  }

  async stop(): Promise<void> {
    for (const socket of this.connections) socket.destroy();
    await new Promise<void>((resolve) => this.server?.close(() => resolve()));
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Writes `data` in pieces of `size`, `gapMs` apart. */
async function trickle(socket: tls.TLSSocket, data: Buffer, size: number, gapMs: number) {
  for (let at = 0; at < data.length; at += size) {
    socket.write(data.subarray(at, at + size));
    await sleep(gapMs);
  }
}

describe('bulk GET: HTTP/1.1 over the transport’s own TLS connections', () => {
  const server = new ScriptedServer();
  let pool: ConnectionPool;
  const get = (headers: Record<string, string> = {}, idleTimeoutMs = 5_000, signal?: AbortSignal) =>
    bulkGet({ url: server.url(), headers, pool, idleTimeoutMs, signal });
  const drainAll = async (response: BulkResponse) => await readSource(response.body, 1 << 24);

  beforeAll(() => server.start());
  afterAll(() => server.stop());
  beforeEach(() => {
    pool = new ConnectionPool({ maxSockets: 4 });
    server.connections.length = 0;
    server.requests.length = 0;
  });
  afterEach(() => pool.destroy());

  it('sends the request line and headers, reads a Content-Length body, and reuses the connection', async () => {
    const body = randomBytes(200_000);
    server.answer = (socket) => {
      socket.write(
        `HTTP/1.1 206 Partial Content\r\nContent-Length: ${body.length}\r\nETag: "0x1"\r\n\r\n`,
      );
      void trickle(socket, body, 30_000, 1);
    };
    const first = await get({ range: 'bytes=0-199999', 'x-ms-version': '2025-01-05' });
    expect(first.status).toBe(206);
    expect(first.headers.etag).toBe('"0x1"');
    expect((await drainAll(first)).equals(body)).toBe(true);
    const second = await get();
    expect((await drainAll(second)).equals(body)).toBe(true);
    expect(server.connections).toHaveLength(1);
    expect(server.requests[0]).toMatch(/^GET \/blob HTTP\/1\.1\r\nHost: 127\.0\.0\.1:\d+\r\n/);
    expect(server.requests[0]).toContain('\r\nrange: bytes=0-199999');
    expect(server.requests[0]).toContain('\r\nx-ms-version: 2025-01-05');
  });

  it('reads a body straight into the memory the reader offers', async () => {
    const body = randomBytes(300_000);
    server.answer = (socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      void trickle(socket, body, 50_000, 2);
    };
    const response = await get();
    const target = Buffer.alloc(body.length + 10);
    let fill = 0;
    let inPlace = 0;
    await response.body.drain(
      (chunk) => {
        if (chunk.buffer === target.buffer && chunk.byteOffset === target.byteOffset + fill) {
          inPlace += chunk.length;
        } else {
          chunk.copy(target, fill);
        }
        fill += chunk.length;
      },
      // Never more than 7000 bytes at a time: records are split across the offers.
      () => target.subarray(fill, fill + 7000),
    );
    expect(target.subarray(0, fill).equals(body)).toBe(true);
    expect(inPlace).toBeGreaterThan(body.length / 2);
    // Nothing past the body's end was written into the reader's memory.
    expect(target.subarray(body.length).equals(Buffer.alloc(10))).toBe(true);
  });

  it('skips interim answers and decodes a chunked body with extensions and trailers', async () => {
    server.answer = (socket) =>
      socket.write(
        'HTTP/1.1 100 Continue\r\n\r\n' +
          'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n' +
          '5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: yes\r\n\r\n',
      );
    const response = await get();
    expect(response.status).toBe(200);
    expect((await drainAll(response)).toString()).toBe('hello world');
    // The connection is reusable after a complete chunked body.
    expect((await drainAll(await get())).toString()).toBe('hello world');
    expect(server.connections).toHaveLength(1);
  });

  it('reads a body the connection’s end frames, and opens a new connection after Connection: close', async () => {
    server.answer = (socket, _head, index) => {
      if (index === 0) {
        socket.end('HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it');
      } else {
        socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
      }
    };
    expect((await drainAll(await get())).toString()).toBe('all of it');
    expect((await drainAll(await get())).toString()).toBe('ok');
    expect(server.connections).toHaveLength(2);
  });

  it('fails a body cut mid-way with a transient ECONNRESET, and a stalled one with ETIMEDOUT', async () => {
    server.answer = (socket, _head, index) => {
      socket.write('HTTP/1.1 206 Partial Content\r\nContent-Length: 1000\r\n\r\n');
      socket.write(Buffer.alloc(300));
      if (index === 0) setTimeout(() => socket.destroy(), 20);
    };
    const cut = await get();
    const cutError = await drainAll(cut).catch((error: unknown) => error);
    expect(cutError).toMatchObject({ code: 'ECONNRESET' });
    expect(isTransient(cutError)).toBe(true);

    const stalled = await get({}, 300);
    const stallError = await drainAll(stalled).catch((error: unknown) => error);
    expect(stallError).toMatchObject({ code: 'ETIMEDOUT' });
    expect(isTransient(stallError)).toBe(true);
  });

  it('keeps a slow body alive while bytes keep coming within the idle timeout', async () => {
    const body = randomBytes(12 * 1024);
    server.answer = (socket) => {
      socket.write(`HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n`);
      // 1.2 s in all, never 400 ms without a byte.
      void trickle(socket, body, 1024, 100);
    };
    expect((await drainAll(await get({}, 400))).equals(body)).toBe(true);
  });

  it('retries on a fresh connection when the server closes a kept one as the request arrives', async () => {
    // The server's keep-alive timer fires just as the request arrives: it closes unanswered.
    server.answer = (socket, _head, index) => {
      if (index === 1) socket.destroy();
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok');
    };
    expect((await drainAll(await get())).toString()).toBe('ok');
    expect((await drainAll(await get())).toString()).toBe('ok');
    expect(server.requests).toHaveLength(3);
    expect(server.connections).toHaveLength(2);
  });

  it('does not send a request again once part of its answer came', async () => {
    server.answer = (socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-');
      setTimeout(() => socket.destroy(), 20);
    };
    await expect(get()).rejects.toMatchObject({ code: 'ECONNRESET' });
    expect(server.requests).toHaveLength(1);
  });

  it('stops a body when the reader says so, and rejects with the reader’s error', async () => {
    server.answer = (socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n');
      void trickle(socket, Buffer.alloc(100_000), 10_000, 5);
    };
    let pieces = 0;
    await (await get()).body.drain(() => (++pieces < 2 ? undefined : false));
    expect(pieces).toBe(2);
    const failure = new Error('disk full');
    await expect(
      (await get()).body.drain(() => {
        throw failure;
      }),
    ).rejects.toBe(failure);
    // Neither half-read connection is reused.
    expect((await get()).status).toBe(200);
    expect(server.connections).toHaveLength(3);
  });

  it('aborts mid-body when the signal fires', async () => {
    server.answer = (socket) => {
      socket.write('HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n');
      socket.write(Buffer.alloc(10));
    };
    const controller = new AbortController();
    const response = await get({}, 5_000, controller.signal);
    setTimeout(() => controller.abort(), 20);
    await expect(drainAll(response)).rejects.toMatchObject({ name: 'AbortError' });
  });

  it('refuses answers that are not HTTP/1.x, oversized heads and invalid lengths', async () => {
    server.answer = (socket, _head, index) => {
      if (index === 0) socket.write('SSH-2.0-OpenSSH\r\n\r\n');
      else if (index === 1) socket.write(`HTTP/1.1 200 OK\r\nX-Big: ${'a'.repeat(70_000)}`);
      else socket.write('HTTP/1.1 200 OK\r\nContent-Length: 12abc\r\n\r\n');
    };
    await expect(get()).rejects.toThrow(/not an HTTP\/1\.x answer/);
    await expect(get()).rejects.toThrow(/headers exceed 65536 bytes/);
    await expect(get()).rejects.toThrow(/invalid Content-Length '12abc'/);
  });

  it('refuses a header that would break the request, and credentials over plain http', async () => {
    await expect(get({ 'x-evil': 'a\r\nInjected: yes' })).rejects.toThrow(/Invalid character/);
    expect(server.requests).toHaveLength(0);
    await expect(
      bulkGet({
        url: new URL('http://blob.example.invalid/c/b'),
        headers: { authorization: 'Bearer secret' },
        pool,
        idleTimeoutMs: 1_000,
      }),
    ).rejects.toBeInstanceOf(InsecureTransportError);
  });
});
