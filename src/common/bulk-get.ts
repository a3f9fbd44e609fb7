import * as http from 'node:http';
import * as net from 'node:net';
import * as tls from 'node:tls';
import { streamBody, type BodySource } from './body-source';
import { send, timeoutError, type ConnectionPool } from './http';
import { TunnelAgent } from './proxy';

/**
 * GETs of large bodies over the transport's own HTTP/1.1 connections. Node's http client hands
 * every TLS record (16 KiB at most) to JavaScript in a fresh buffer, runs it through its parser
 * and a readable stream and emits it: measured on this project's 2-core machine, receiving
 * 1 GiB that way cost 1.9 s of CPU where the same TLS connection read into one reused buffer
 * (the `onread` option of tls.connect) cost 0.75 s. A bulk GET writes the request line and
 * headers itself, parses the answer's head, and delivers the body from that one buffer per
 * connection (BodySource), keeping connections alive between ranges.
 *
 * Everything else is the transport's: the route (direct, or a CONNECT tunnel through the proxy
 * the environment names, where TLS runs over the tunnel and reads come as 'data' events), TLS
 * trust, the https-only rule for credentials, idle timeouts and aborts. Plain-http targets and
 * forwarding proxies go through `send` and its streams.
 */

export interface BulkGetRequest {
  url: URL;
  /** Request headers; Host is added. */
  headers: Record<string, string>;
  pool: ConnectionPool;
  /** A connection idle this long (connecting, waiting, mid-body) fails with ETIMEDOUT. */
  idleTimeoutMs: number;
  signal?: AbortSignal;
  /** A credential rides outside the Authorization header (a SAS): never over plain http. */
  carriesCredential?: boolean;
}

export interface BulkResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  body: BodySource;
}

/** Bytes each connection reads into (decrypted TLS records are at most 16 KiB). */
const READ_BUFFER = 64 * 1024;
/** A response head larger than this is refused. */
const MAX_HEAD = 64 * 1024;
/** How long an unused connection is kept when the server names no keep-alive timeout. */
const DEFAULT_KEEP_ALIVE_MS = 4_000;

/** Sends a GET whose body the caller drains; resolves once the answer's head has arrived. */
export async function bulkGet(request: BulkGetRequest): Promise<BulkResponse> {
  const { url } = request;
  const route = request.pool.route(url);
  if (url.protocol !== 'https:' || route.forwardProxy) {
    // `send` refuses credentials over plain http; bulk GETs themselves are https only.
    const response = await send({ ...request, method: 'GET' });
    return { status: response.status, headers: response.headers, body: streamBody(response.body) };
  }
  const head = requestHead(url, request.headers);
  const idle = idleConnections(request.pool);
  const key = `${url.host} ${route.agent instanceof TunnelAgent ? 'tunnel' : 'direct'}`;
  // A kept connection the server closed meanwhile fails before any answer: one fresh try.
  for (let attempt = 0; ; attempt++) {
    const reused = attempt === 0 ? idle.take(key) : undefined;
    const connection =
      reused ?? (await Connection.open(url, request.pool, route.agent, request.idleTimeoutMs));
    try {
      return await connection.get(head, request, (kept) => idle.keep(key, kept));
    } catch (error) {
      if (!reused || !(error as { beforeAnswer?: boolean }).beforeAnswer) throw error;
    }
  }
}

function requestHead(url: URL, headers: Record<string, string>): Buffer {
  const lines = [`GET ${url.pathname}${url.search} HTTP/1.1`, `Host: ${url.host}`];
  for (const [name, value] of Object.entries(headers)) {
    if (name.toLowerCase() === 'host') continue;
    // Throws on a name or value that would break the request (CR, LF, ...).
    http.validateHeaderName(name);
    http.validateHeaderValue(name, value);
    lines.push(`${name}: ${value}`);
  }
  return Buffer.from(`${lines.join('\r\n')}\r\n\r\n`, 'latin1');
}

/** Unused connections of one pool, by target and route, newest first. */
class IdleConnections {
  private readonly byKey = new Map<string, Connection[]>();

  take(key: string): Connection | undefined {
    const list = this.byKey.get(key);
    while (list && list.length > 0) {
      const connection = list.pop()!;
      if (connection.usable()) return connection;
    }
    return undefined;
  }

  keep(key: string, connection: Connection): void {
    let list = this.byKey.get(key);
    if (!list) this.byKey.set(key, (list = []));
    list.push(connection);
    connection.onExpire(() => {
      const at = list!.indexOf(connection);
      if (at >= 0) list!.splice(at, 1);
    });
  }

  destroy(): void {
    for (const list of this.byKey.values()) for (const connection of list) connection.close();
    this.byKey.clear();
  }
}

const idlePools = new WeakMap<ConnectionPool, IdleConnections>();
function idleConnections(pool: ConnectionPool): IdleConnections {
  let idle = idlePools.get(pool);
  if (!idle) {
    const created = new IdleConnections();
    idle = created;
    idlePools.set(pool, created);
    pool.onDestroy(() => created.destroy());
  }
  return idle;
}

type Framing =
  | { kind: 'length'; remaining: number }
  | {
      kind: 'chunked';
      state: 'size' | 'data' | 'data-end' | 'trailer';
      remaining: number;
      line: string;
    }
  | { kind: 'close' };

/** What a connection does with the bytes it reads, while it serves one GET. */
interface Exchange {
  /** Bytes of the head read so far, until it is complete. */
  head?: Buffer;
  /** Resolves the GET with the parsed head. */
  answered: (response: BulkResponse) => void;
  failed: (error: Error) => void;
  framing?: Framing;
  /** Body bytes that arrived before the reader drained them (copies). */
  pending: Buffer[];
  /** Where the reader would like the next bytes (see BodySource.drain). */
  into?: () => Buffer;
  /** Set once the reader drains. */
  reader?: (chunk: Buffer) => boolean | void;
  finished?: { resolve: () => void; reject: (error: Error) => void };
  /** How the exchange ended before the reader came for it. */
  outcome?: { error?: Error };
  reusable: boolean;
  release: () => void;
  received: number;
}

/** One kept-alive TLS connection that serves one bulk GET at a time. */
class Connection {
  private exchange?: Exchange;
  private closed?: Error;
  private expiry?: () => void;
  private keepAliveMs = DEFAULT_KEEP_ALIVE_MS;
  /** The idle timeout of the exchange in progress. */
  private idleMs = 0;

  private constructor(private readonly socket: tls.TLSSocket) {
    socket.on('error', (error) => this.fail(error));
    // Closed mid-answer: reported as Node's http client does ('socket hang up').
    socket.on('close', (hadError) => this.fail(connectionReset(), !hadError));
    socket.on('timeout', () => {
      if (this.exchange) socket.destroy(timeoutError(this.idleMs));
      else this.close();
    });
  }

  static async open(
    url: URL,
    pool: ConnectionPool,
    agent: http.Agent,
    idleTimeoutMs: number,
  ): Promise<Connection> {
    const host = url.hostname.replace(/^\[|\]$/g, '');
    const port = Number(url.port || 443);
    const options: tls.ConnectionOptions = {
      ...pool.tlsOptions,
      host,
      port,
      servername: net.isIP(host) ? undefined : host,
    };
    let connection: Connection | undefined;
    const scratch = Buffer.allocUnsafe(READ_BUFFER);
    const onread = {
      // Asked before every read: the reader's memory while it drains a body, else our own.
      buffer: () => connection?.readTarget() ?? scratch,
      callback: (bytes: number, buffer: Uint8Array) => {
        connection!.read(Buffer.from(buffer.buffer, buffer.byteOffset, bytes));
      },
    };
    let socket: tls.TLSSocket;
    if (agent instanceof TunnelAgent) {
      // TLS over a proxy's tunnel reads into fresh buffers ('data'); only the route differs.
      socket = await new Promise((resolve, reject) =>
        agent.createConnection(options, (error, created) =>
          error ? reject(error) : resolve(created as tls.TLSSocket),
        ),
      );
      connection = new Connection(socket);
      socket.on('data', (chunk: Buffer) => connection!.read(chunk));
    } else {
      // Node's tls.connect takes net.connect's `onread` (its types omit it).
      const direct: tls.ConnectionOptions & { onread: typeof onread } = { ...options, onread };
      socket = tls.connect(direct);
      connection = new Connection(socket);
    }
    connection.idleMs = idleTimeoutMs;
    socket.setTimeout(idleTimeoutMs);
    return connection;
  }

  /** Where the next bytes should land: the draining reader's memory, if it offers some. */
  readTarget(): Buffer | undefined {
    const exchange = this.exchange;
    const framing = exchange?.framing;
    if (!exchange?.into || exchange.head || framing?.kind !== 'length') return undefined;
    if (framing.remaining === 0) return undefined;
    const target = exchange.into();
    return target.length > 0 ? target.subarray(0, framing.remaining) : undefined;
  }

  usable(): boolean {
    return !this.closed && !this.socket.destroyed;
  }

  /** Called when this idle connection closes or expires. */
  onExpire(expire: () => void): void {
    this.expiry = expire;
    this.socket.unref();
    this.socket.setTimeout(this.keepAliveMs);
  }

  close(): void {
    this.socket.destroy();
  }

  get(
    head: Buffer,
    request: BulkGetRequest,
    keep: (connection: Connection) => void,
  ): Promise<BulkResponse> {
    this.expiry = undefined;
    this.socket.ref();
    this.idleMs = request.idleTimeoutMs;
    this.socket.setTimeout(request.idleTimeoutMs);
    return new Promise((resolve, reject) => {
      const { signal } = request;
      const onAbort = () =>
        this.socket.destroy(
          Object.assign(new Error('The operation was aborted'), {
            name: 'AbortError',
            code: 'ABORT_ERR',
          }),
        );
      if (signal?.aborted) {
        onAbort();
      }
      signal?.addEventListener('abort', onAbort, { once: true });
      const exchange: Exchange = {
        head: Buffer.alloc(0),
        answered: resolve,
        failed: (error) => {
          // Nothing of an answer arrived: a kept connection closed by the server meanwhile.
          reject(Object.assign(error, { beforeAnswer: exchange.received === 0 }));
        },
        pending: [],
        reusable: true,
        received: 0,
        release: () => {
          signal?.removeEventListener('abort', onAbort);
          this.exchange = undefined;
          if (exchange.reusable && this.usable()) keep(this);
          else this.close();
        },
      };
      this.exchange = exchange;
      if (this.closed) {
        this.fail(this.closed);
        return;
      }
      this.socket.write(head);
    });
  }

  /** Bytes off the socket (valid only during this call). */
  private read(chunk: Buffer): void {
    const exchange = this.exchange;
    if (!exchange) {
      // Nothing was asked: a server that talks out of turn loses its connection.
      this.close();
      return;
    }
    exchange.received += chunk.length;
    if (exchange.head) {
      this.readHead(exchange, chunk);
      return;
    }
    this.readBody(exchange, chunk);
  }

  private readHead(exchange: Exchange, chunk: Buffer): void {
    const head = Buffer.concat([exchange.head!, chunk]);
    const end = head.indexOf('\r\n\r\n');
    if (end < 0) {
      if (head.length > MAX_HEAD) {
        this.socket.destroy(new Error(`the answer's headers exceed ${MAX_HEAD} bytes`));
        return;
      }
      exchange.head = head;
      return;
    }
    const parsed = parseHead(head.subarray(0, end).toString('latin1'));
    if (!parsed) {
      this.socket.destroy(new Error('the server sent something that is not an HTTP/1.x answer'));
      return;
    }
    const rest = head.subarray(end + 4);
    if (parsed.status >= 100 && parsed.status < 200) {
      // An interim answer (100 Continue, 103 Early Hints): the real one follows.
      exchange.head = Buffer.alloc(0);
      if (rest.length > 0) this.readHead(exchange, rest);
      return;
    }
    const { headers } = parsed;
    const framing = bodyFraming(parsed);
    if (framing instanceof Error) {
      this.socket.destroy(framing);
      return;
    }
    exchange.head = undefined;
    exchange.framing = framing;
    const connection = String(headers.connection ?? '').toLowerCase();
    exchange.reusable =
      framing.kind !== 'close' &&
      (parsed.version === '1.1'
        ? !/\bclose\b/.test(connection)
        : /\bkeep-alive\b/.test(connection));
    const keepAlive = /timeout=(\d+)/i.exec(String(headers['keep-alive'] ?? ''));
    // A second less than the server keeps it, so the server is not the one to close it.
    if (keepAlive) this.keepAliveMs = Math.max(500, Number(keepAlive[1]) * 1000 - 1000);
    // Nothing is read until the reader drains: what is already here waits, copied.
    if (rest.length > 0) exchange.pending.push(Buffer.from(rest));
    this.socket.pause();
    exchange.answered({
      status: parsed.status,
      headers,
      body: {
        drain: (onChunk, into) => this.drain(exchange, onChunk, into),
        destroy: () => {
          if (this.exchange === exchange) {
            exchange.reusable = false;
            this.close();
          }
        },
      },
    });
    this.settleIfEmpty(exchange);
  }

  private drain(
    exchange: Exchange,
    onChunk: (chunk: Buffer) => boolean | void,
    into?: () => Buffer,
  ): Promise<void> {
    return new Promise((resolve, reject) => {
      if (exchange.reader) {
        reject(new Error('a body can be drained once'));
        return;
      }
      exchange.finished = { resolve, reject };
      exchange.reader = onChunk;
      exchange.into = into;
      const pending = exchange.pending;
      exchange.pending = [];
      for (const chunk of pending) {
        if (!exchange.outcome) {
          if (this.exchange !== exchange) break;
          this.readBody(exchange, chunk);
          continue;
        }
        // The connection ended the body before the reader came: hand over what it left.
        if (exchange.outcome.error || exchange.framing?.kind !== 'close') break;
        try {
          if (onChunk(chunk) === false) break;
        } catch (error) {
          reject(error);
          return;
        }
      }
      if (exchange.outcome) {
        if (exchange.outcome.error) reject(exchange.outcome.error);
        else resolve();
        return;
      }
      if (this.exchange === exchange) this.socket.resume();
    });
  }

  private readBody(exchange: Exchange, chunk: Buffer): void {
    if (!exchange.reader) {
      exchange.pending.push(Buffer.from(chunk));
      return;
    }
    const framing = exchange.framing!;
    if (framing.kind === 'close') {
      this.deliver(exchange, chunk);
      return;
    }
    if (framing.kind === 'length') {
      const take = Math.min(chunk.length, framing.remaining);
      framing.remaining -= take;
      if (
        take > 0 &&
        !this.deliver(exchange, take === chunk.length ? chunk : chunk.subarray(0, take))
      )
        return;
      // Bytes past the body's end would be read as the next answer: the connection is spent.
      if (take < chunk.length) exchange.reusable = false;
      if (framing.remaining === 0) this.complete(exchange);
      return;
    }
    this.readChunked(exchange, framing, chunk);
  }

  private readChunked(
    exchange: Exchange,
    framing: Extract<Framing, { kind: 'chunked' }>,
    chunk: Buffer,
  ): void {
    let at = 0;
    while (at < chunk.length && this.exchange === exchange) {
      if (framing.state === 'data') {
        const take = Math.min(chunk.length - at, framing.remaining);
        framing.remaining -= take;
        if (!this.deliver(exchange, chunk.subarray(at, at + take))) return;
        at += take;
        if (framing.remaining === 0) framing.state = 'data-end';
        continue;
      }
      const newline = chunk.indexOf(10, at);
      const end = newline < 0 ? chunk.length : newline + 1;
      framing.line += chunk.subarray(at, end).toString('latin1');
      at = end;
      if (newline < 0) {
        if (framing.line.length > 4096) this.socket.destroy(new Error('malformed chunked body'));
        continue;
      }
      const line = framing.line.trim();
      framing.line = '';
      if (framing.state === 'data-end') {
        if (line !== '') return void this.socket.destroy(new Error('malformed chunked body'));
        framing.state = 'size';
      } else if (framing.state === 'size') {
        const size = /^[0-9a-f]+/i.exec(line);
        if (!size) return void this.socket.destroy(new Error('malformed chunked body'));
        framing.remaining = parseInt(size[0], 16);
        framing.state = framing.remaining === 0 ? 'trailer' : 'data';
      } else if (line === '') {
        if (at < chunk.length) exchange.reusable = false;
        this.complete(exchange);
        return;
      }
    }
  }

  /** Hands a body piece to the reader; false when the body stopped there. */
  private deliver(exchange: Exchange, chunk: Buffer): boolean {
    let more: boolean | void;
    try {
      more = exchange.reader!(chunk);
    } catch (error) {
      exchange.reusable = false;
      this.finish(exchange, error as Error);
      this.close();
      return false;
    }
    if (more === false) {
      exchange.reusable = false;
      this.finish(exchange);
      this.close();
      return false;
    }
    return true;
  }

  private settleIfEmpty(exchange: Exchange): void {
    const framing = exchange.framing;
    if (framing?.kind === 'length' && framing.remaining === 0 && exchange.pending.length === 0) {
      this.complete(exchange);
    }
  }

  private complete(exchange: Exchange): void {
    this.finish(exchange);
    this.socket.resume();
  }

  /** Ends an exchange: releases (or closes) the connection, settles the reader's drain. */
  private finish(exchange: Exchange, error?: Error): void {
    if (this.exchange !== exchange) return;
    exchange.release();
    if (exchange.finished) {
      if (error) exchange.finished.reject(error);
      else exchange.finished.resolve();
    } else {
      exchange.outcome = { error };
    }
  }

  /**
   * The connection failed or closed (`clean`: closed by the server without an error): whatever
   * it was serving fails with `error`, unless its body was framed by the connection's end.
   */
  private fail(error: Error, clean = false): void {
    this.closed ??= error;
    const exchange = this.exchange;
    if (!exchange) {
      this.expiry?.();
      this.expiry = undefined;
      return;
    }
    exchange.reusable = false;
    if (exchange.head) {
      exchange.release();
      exchange.failed(error);
      return;
    }
    const endsWithConnection = clean && exchange.framing?.kind === 'close';
    // Bytes that came before the end and still wait for the reader are delivered first.
    if (endsWithConnection) this.finish(exchange);
    else this.finish(exchange, error);
  }
}

/** How the body of an answer ends, or why it cannot be read. */
function bodyFraming({ status, headers }: Head): Framing | Error {
  if (status === 204 || status === 304) return { kind: 'length', remaining: 0 };
  const encoding = String(headers['transfer-encoding'] ?? '').toLowerCase();
  if (encoding !== '' && encoding !== 'identity') {
    if (!/(^|,)\s*chunked\s*$/.test(encoding)) {
      return new Error(`unsupported Transfer-Encoding '${encoding}'`);
    }
    return { kind: 'chunked', state: 'size', remaining: 0, line: '' };
  }
  const length = headers['content-length'];
  if (length === undefined) return { kind: 'close' };
  const value = Number(length);
  if (!/^\d+$/.test(String(length)) || !Number.isSafeInteger(value)) {
    return new Error(`invalid Content-Length '${String(length)}'`);
  }
  return { kind: 'length', remaining: value };
}

interface Head {
  version: string;
  status: number;
  headers: http.IncomingHttpHeaders;
}

/** The status line and headers of an answer; undefined when it is not HTTP/1.x. */
function parseHead(text: string): Head | undefined {
  const lines = text.split('\r\n');
  const status = /^HTTP\/1\.([01]) (\d{3})(?: .*)?$/.exec(lines[0]);
  if (!status) return undefined;
  const headers: Record<string, string> = {};
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(':');
    if (colon <= 0) return undefined;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    headers[name] = name in headers ? `${headers[name]}, ${value}` : value;
  }
  return { version: `1.${status[1]}`, status: Number(status[2]), headers };
}

function connectionReset(): NodeJS.ErrnoException {
  return Object.assign(new Error('the server closed the connection before its answer ended'), {
    code: 'ECONNRESET',
  });
}
