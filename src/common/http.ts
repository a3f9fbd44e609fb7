import * as http from 'node:http';
import * as https from 'node:https';
import { ConfigurationError } from './errors';
import { HttpError, parseRetryAfter, type ErrorBodyParser, type ServiceError } from './http-error';
import type { Logger } from './logger';
import { isLoopback, proxyAuthorization, proxyFor, TunnelAgent } from './proxy';
import { withRetry, type RetryPolicy } from './retry';

/**
 * The one HTTP transport of every action and service: blob stores, the registry and its token
 * service, ARM, the Kubernetes API and, through an adapter, the Azure SDK. It routes through the
 * forward proxy the environment names (CONNECT tunnels for https), keeps connections alive,
 * times out idle sockets, follows redirects only when asked (dropping credentials when they
 * leave the origin), and refuses to send a credential in the clear.
 */

/** A buffer, or a factory of a fresh byte stream (so a request can be sent again). */
export type RequestBody = Buffer | string | (() => AsyncIterable<Buffer>);

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Record<string, string>;
  body?: RequestBody;
  /**
   * A socket idle this long (connecting, sending, waiting for the answer) fails the request
   * with a transient ETIMEDOUT. Default 60 s.
   */
  idleTimeoutMs?: number;
  /** The same for the response body once headers arrived; 0 for none (watches). Default idleTimeoutMs. */
  bodyIdleTimeoutMs?: number;
  /** Follow this many 301/302/303/307/308 hops of a GET or HEAD; 0 (default) returns them. */
  maxRedirects?: number;
  /** Where connections come from; the shared pool unless a service needs its own TLS trust. */
  pool?: ConnectionPool;
  signal?: AbortSignal;
  /** A credential rides outside the Authorization header (a SAS in the URL, a token in a form): never sent over plain http. */
  carriesCredential?: boolean;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body, unread: stream it, or call readBody. */
  body: http.IncomingMessage;
  /** Where the answer came from, after any redirects. */
  url: URL;
}

export interface PoolOptions {
  /** Connections kept per origin. */
  maxSockets: number;
  /** TLS trust and client certificate for https targets (a cluster's own CA, say). */
  tls?: Pick<https.AgentOptions, 'ca' | 'cert' | 'key' | 'rejectUnauthorized'>;
  /** Time allowed for a proxy to answer CONNECT. */
  connectTimeoutMs?: number;
}

/** How one request reaches its target: which agent, and for plain http, which proxy to address. */
interface Route {
  agent: http.Agent;
  forwardProxy?: URL;
}

/**
 * Keep-alive agents, one per way of reaching a target (direct, tunnelled through a proxy, or
 * forwarded by it), created when first needed. The proxy is read from the environment on each
 * request, so a process that changes HTTPS_PROXY or NO_PROXY sees the change.
 */
export class ConnectionPool {
  private readonly agents = new Map<string, http.Agent>();
  private readonly closers: (() => void)[] = [];

  constructor(private readonly options: PoolOptions) {}

  /** TLS trust and client certificate for connections to https targets. */
  get tlsOptions(): PoolOptions['tls'] {
    return this.options.tls;
  }

  /** Runs `close` when the pool is destroyed (connections kept outside the agents). */
  onDestroy(close: () => void): void {
    this.closers.push(close);
  }

  route(target: URL, env: NodeJS.ProcessEnv = process.env): Route {
    const proxy = proxyFor(target, env);
    const secure = target.protocol === 'https:';
    if (!proxy) return { agent: this.agent(secure ? 'https' : 'http', undefined) };
    if (secure) return { agent: this.agent('tunnel', proxy) };
    return {
      agent: this.agent(proxy.protocol === 'https:' ? 'https' : 'http', proxy),
      forwardProxy: proxy,
    };
  }

  private agent(kind: 'http' | 'https' | 'tunnel', proxy: URL | undefined): http.Agent {
    const key = `${kind} ${proxy?.href ?? ''}`;
    let agent = this.agents.get(key);
    if (!agent) {
      const common = {
        keepAlive: true,
        maxSockets: this.options.maxSockets,
        scheduling: 'lifo' as const,
      };
      if (kind === 'tunnel') {
        agent = new TunnelAgent(
          proxy!,
          { ...common, ...this.options.tls },
          this.options.connectTimeoutMs ?? 30_000,
        );
      } else if (kind === 'https') {
        // A forwarding proxy reached over https is verified with the default trust, not the
        // target's: only tunnelled targets get this pool's own TLS options.
        agent = new https.Agent(proxy ? common : { ...common, ...this.options.tls });
      } else {
        agent = new http.Agent(common);
      }
      this.agents.set(key, agent);
    }
    return agent;
  }

  destroy(): void {
    for (const agent of this.agents.values()) agent.destroy();
    this.agents.clear();
    for (const close of this.closers.splice(0)) close();
  }
}

const sharedPools = new Map<number, ConnectionPool>();

/** The pool shared by every request that has no TLS needs of its own. */
export function sharedPool(maxSockets = 16): ConnectionPool {
  let pool = sharedPools.get(maxSockets);
  if (!pool) {
    pool = new ConnectionPool({ maxSockets });
    sharedPools.set(maxSockets, pool);
  }
  return pool;
}

/**
 * A form POST that carries a credential in its body (a token exchange, STS): refused over
 * plain http like an Authorization header, and timed out like any short request.
 */
export function credentialForm(url: URL, form: URLSearchParams): HttpRequest {
  const body = form.toString();
  return {
    method: 'POST',
    url,
    headers: {
      'content-type': 'application/x-www-form-urlencoded; charset=utf-8',
      'content-length': String(Buffer.byteLength(body)),
    },
    body,
    idleTimeoutMs: 30_000,
    carriesCredential: true,
  };
}

/** Builds a service's error class from the shared mapping. */
export function errorFactory(
  ErrorClass: new (
    message: string,
    status: number,
    code: string | undefined,
    retryAfterMs?: number,
    serviceMessage?: string,
  ) => HttpError,
): HttpErrorFactory {
  return (message, status, service, retryAfterMs) =>
    new ErrorClass(message, status, service.code, retryAfterMs, service.message);
}

/** A credential would cross the network in the clear. */
export class InsecureTransportError extends ConfigurationError {
  constructor(url: URL) {
    super(
      `Refusing to send a credential to ${url.origin} over plain http: tokens, passwords and ` +
        `SAS signatures go only over https (plain http only to a loopback address). Use an ` +
        `https:// endpoint.`,
    );
    this.name = 'InsecureTransportError';
  }
}

const REDIRECTS = new Set([301, 302, 303, 307, 308]);
/** Headers that carry a credential for one origin; dropped when a redirect leaves it. */
const CREDENTIAL_HEADERS = new Set(['authorization', 'cookie', 'x-ms-copy-source-authorization']);

/**
 * Sends a request and resolves once the response headers arrive. With `maxRedirects`, GETs and
 * HEADs follow redirects; a hop to another origin carries no credential header (the bytes are
 * checked against their digest wherever they come from).
 */
export async function send(request: HttpRequest): Promise<HttpResponse> {
  let current = request;
  for (let hop = 0; ; hop++) {
    const response = await sendOnce(current);
    const follow =
      REDIRECTS.has(response.status) &&
      (request.maxRedirects ?? 0) > 0 &&
      (request.method === 'GET' || request.method === 'HEAD');
    const location = header(response, 'location');
    if (!follow || !location) return response;
    discardBody(response.body);
    if (hop >= request.maxRedirects!) {
      throw new Error(
        `${request.method} ${request.url.origin}${request.url.pathname}: more than ` +
          `${request.maxRedirects} redirects`,
      );
    }
    const next = new URL(location, current.url);
    if (next.protocol !== 'https:' && next.protocol !== 'http:') {
      throw new Error(
        `${current.url.origin} redirected to an unsupported URL scheme ${next.protocol}`,
      );
    }
    const headers =
      next.origin === current.url.origin
        ? current.headers
        : withoutCredentials(current.headers ?? {});
    current = { ...current, url: next, headers, carriesCredential: false };
  }
}

function withoutCredentials(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(
    Object.entries(headers).filter(([name]) => !CREDENTIAL_HEADERS.has(name.toLowerCase())),
  );
}

function carriesCredential(request: HttpRequest): boolean {
  if (request.carriesCredential) return true;
  return Object.keys(request.headers ?? {}).some((name) =>
    CREDENTIAL_HEADERS.has(name.toLowerCase()),
  );
}

/** Refuses a credential over plain http to anything but this machine. */
export function assertSecureForCredentials(url: URL): void {
  if (url.protocol !== 'https:' && !isLoopback(url.hostname)) throw new InsecureTransportError(url);
}

function sendOnce(request: HttpRequest): Promise<HttpResponse> {
  const { url } = request;
  if (carriesCredential(request)) assertSecureForCredentials(url);
  const route = (request.pool ?? sharedPool()).route(url);
  const idle = request.idleTimeoutMs ?? 60_000;
  const bodyIdle = request.bodyIdleTimeoutMs ?? idle;
  return new Promise((resolve, reject) => {
    let answered = false;
    const onResponse = (res: http.IncomingMessage) => {
      answered = true;
      if (bodyIdle > 0) watchBodyIdle(res, bodyIdle);
      else res.socket.setTimeout(0);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res, url });
    };
    let req: http.ClientRequest;
    if (route.forwardProxy) {
      // Plain http through a proxy: the request line names the whole URL.
      const proxy = route.forwardProxy;
      const headers: Record<string, string> = { ...request.headers, host: url.host };
      const authorization = proxyAuthorization(proxy);
      if (authorization) headers['proxy-authorization'] = authorization;
      const transport = proxy.protocol === 'https:' ? https : http;
      req = transport.request(
        {
          method: request.method,
          hostname: proxy.hostname.replace(/^\[|\]$/g, ''),
          port: proxy.port || (proxy.protocol === 'https:' ? 443 : 80),
          path: url.href,
          headers,
          agent: route.agent,
          signal: request.signal,
        },
        onResponse,
      );
    } else {
      const transport = url.protocol === 'https:' ? https : http;
      req = transport.request(
        url,
        {
          method: request.method,
          headers: request.headers,
          agent: route.agent,
          signal: request.signal,
        },
        onResponse,
      );
    }
    if (idle > 0) req.setTimeout(idle, () => req.destroy(timeoutError(idle)));
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    writeBody(req, request.body, () => answered);
  });
}

/**
 * Writes a body with back-pressure. When the server answers before the body is complete (a
 * 401, a 4xx), the rest is not sent.
 */
function writeBody(
  req: http.ClientRequest,
  body: RequestBody | undefined,
  answered: () => boolean,
): void {
  if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
    req.end(body);
    return;
  }
  void (async () => {
    try {
      for await (const chunk of body()) {
        if (answered() || req.destroyed) return;
        // The next chunk is asked for only once this one has gone to the socket, so a body
        // may read every chunk into the same buffer (see TarLayer.read).
        await new Promise<void>((done) => {
          const finish = () => {
            req.off('close', finish);
            done();
          };
          req.on('close', finish);
          req.write(chunk, finish);
        });
      }
      if (!req.destroyed) req.end();
    } catch (error) {
      req.destroy(error as Error);
    }
  })();
}

/**
 * Fails a response whose body stalls for `ms`. The listener comes off the socket when the
 * response ends, because a kept-alive socket serves many responses and would otherwise
 * collect one listener per request.
 */
function watchBodyIdle(res: http.IncomingMessage, ms: number): void {
  const socket = res.socket;
  const onTimeout = () => res.destroy(timeoutError(ms));
  socket.setTimeout(ms);
  socket.on('timeout', onTimeout);
  res.once('close', () => {
    socket.removeListener('timeout', onTimeout);
    socket.setTimeout(0);
  });
}

export function timeoutError(ms: number): NodeJS.ErrnoException {
  const error: NodeJS.ErrnoException = new Error(`no data for ${ms} ms; timed out`);
  error.code = 'ETIMEDOUT';
  return error;
}

/** One response header, the first when it was sent more than once. */
export function header(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}

/** Reads a (small) body whole; refuses bodies over `limit` bytes. */
export async function readBody(
  res: http.IncomingMessage,
  limit = 4 * 1024 * 1024,
): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let length = 0;
  for await (const chunk of res) {
    length += (chunk as Buffer).length;
    if (length > limit) {
      res.destroy();
      throw new Error(`response body exceeds ${limit} bytes`);
    }
    chunks.push(chunk as Buffer);
  }
  return Buffer.concat(chunks);
}

/** Drains and discards a body so its connection can be reused. */
export function discardBody(res: http.IncomingMessage): void {
  res.resume();
}

/** Builds the error a service's class uses; HttpError itself by default. */
export type HttpErrorFactory = (
  message: string,
  status: number,
  service: ServiceError,
  retryAfterMs: number | undefined,
) => HttpError;

const plainHttpError = errorFactory(HttpError);

/**
 * Turns an unexpected status into an error that keeps the service's code and message (from
 * x-ms-error-code or the body) and its Retry-After, as seconds or an HTTP date.
 */
export async function statusError(
  response: HttpResponse,
  what: string,
  parse: ErrorBodyParser = () => ({}),
  create: HttpErrorFactory = plainHttpError,
): Promise<HttpError> {
  let text = '';
  if (response.body.readable) {
    try {
      text = (await readBody(response.body, 64 * 1024)).toString('utf8');
    } catch {
      // A body we cannot read does not change the status we report.
    }
  }
  return answerError(
    { status: response.status, header: (name) => header(response, name), text },
    what,
    parse,
    create,
  );
}

/** An answer already read: its status, its headers by name, its body as text. */
export interface ReadAnswer {
  status: number;
  header: (name: string) => string | undefined;
  text: string;
}

/** statusError for an answer whose body was already read (by an SDK's pipeline, say). */
export function answerError(
  answer: ReadAnswer,
  what: string,
  parse: ErrorBodyParser = () => ({}),
  create: HttpErrorFactory = plainHttpError,
): HttpError {
  const service = answer.text ? parse(answer.text) : {};
  const code = answer.header('x-ms-error-code') ?? service.code;
  const detail = service.message ? `: ${service.message}` : '';
  return create(
    `${what} failed: HTTP ${answer.status}${code ? ` ${code}` : ''}${detail}`,
    answer.status,
    { ...service, code },
    parseRetryAfter(answer.header('retry-after')),
  );
}

/** Whether an answer is worth another try: 408, 429 and 5xx. */
export function isRetryableStatus(status: number): boolean {
  return status === 408 || status === 429 || status >= 500;
}

/**
 * Sends a short request (metadata, listings, tokens) with the retry policy: 408, 429 and 5xx
 * answers become retryable errors carrying the service's code and Retry-After, as do dropped
 * connections. Other answers are returned. Long transfers retry in their own loops, from the
 * bytes they already have.
 */
export function sendWithRetry(
  sendOnceFn: () => Promise<HttpResponse>,
  description: string,
  options: {
    retry?: RetryPolicy;
    logger?: Logger;
    parse?: ErrorBodyParser;
    create?: HttpErrorFactory;
  },
): Promise<HttpResponse> {
  return withRetry(
    async () => {
      const response = await sendOnceFn();
      if (isRetryableStatus(response.status)) {
        throw await statusError(response, description, options.parse, options.create);
      }
      return response;
    },
    { policy: options.retry, logger: options.logger, description },
  );
}
