import * as http from 'node:http';
import * as https from 'node:https';
import type { Logger } from './logger';
import { HttpStatusError, parseRetryAfter, withRetry, type RetryPolicy } from './retry';

export interface HttpRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  url: URL;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** An idle socket for this long fails the request (a transient timeout). */
  idleTimeoutMs?: number;
  agent?: http.Agent;
}

export interface HttpResponse {
  status: number;
  headers: http.IncomingHttpHeaders;
  /** The body, unread: stream it, or call readBody. */
  body: http.IncomingMessage;
}

/** One keep-alive agent per protocol and connection limit, shared by every request. */
const agents = new Map<string, http.Agent>();

export function keepAliveAgent(protocol: string, maxSockets: number): http.Agent {
  const key = `${protocol}${maxSockets}`;
  let agent = agents.get(key);
  if (!agent) {
    const options = { keepAlive: true, maxSockets, scheduling: 'lifo' as const };
    agent = protocol === 'https:' ? new https.Agent(options) : new http.Agent(options);
    agents.set(key, agent);
  }
  return agent;
}

/** Sends a request and resolves once the response headers arrive. */
export function send(request: HttpRequest): Promise<HttpResponse> {
  const { url } = request;
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    const req = transport.request(
      url,
      {
        method: request.method,
        headers: request.headers,
        agent: request.agent ?? keepAliveAgent(url.protocol, 16),
      },
      (res) => {
        if (request.idleTimeoutMs) watchBodyIdle(res, request.idleTimeoutMs);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      },
    );
    if (request.idleTimeoutMs) {
      req.setTimeout(request.idleTimeoutMs, () =>
        req.destroy(timeoutError(request.idleTimeoutMs!)),
      );
    }
    req.on('error', reject);
    req.end(request.body);
  });
}

/**
 * Fails a response whose body stalls for `ms`. The listener comes off the socket when the
 * response ends, because a kept-alive socket serves many responses and would otherwise
 * collect one listener per request.
 */
export function watchBodyIdle(res: http.IncomingMessage, ms: number): void {
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

/** A URL without its query string: what may be logged when a SAS or token rides in the query. */
export function redactUrl(url: URL | string): string {
  const parsed = new URL(url.toString());
  return `${parsed.origin}${parsed.pathname}${parsed.search ? '?…' : ''}`;
}

/** Turns an unexpected status into an error that carries the service's code and Retry-After. */
export async function statusError(
  response: HttpResponse,
  what: string,
  codeFromBody: (body: string) => string | undefined = () => undefined,
): Promise<HttpStatusError> {
  let text = '';
  try {
    text = (await readBody(response.body, 64 * 1024)).toString('utf8');
  } catch {
    // A body we cannot read does not change the status we report.
  }
  const headerCode = response.headers['x-ms-error-code'];
  const code = (Array.isArray(headerCode) ? headerCode[0] : headerCode) ?? codeFromBody(text);
  const retryAfter = response.headers['retry-after'];
  return new HttpStatusError(
    `${what} failed: HTTP ${response.status}${code ? ` ${code}` : ''}`,
    response.status,
    code,
    parseRetryAfter(Array.isArray(retryAfter) ? retryAfter[0] : retryAfter),
  );
}

/**
 * Sends a short request (metadata, listings) with retries: 408, 429 and 5xx answers become
 * retryable errors carrying the service's code and Retry-After, as do dropped connections.
 * Long transfers retry in their own loops, from the bytes they already have.
 */
export function sendWithRetry(
  sendOnce: () => Promise<HttpResponse>,
  description: string,
  options: {
    retry?: RetryPolicy;
    logger?: Logger;
    codeFromBody?: (body: string) => string | undefined;
  },
): Promise<HttpResponse> {
  return withRetry(
    async () => {
      const response = await sendOnce();
      if (response.status === 408 || response.status === 429 || response.status >= 500) {
        throw await statusError(response, description, options.codeFromBody);
      }
      return response;
    },
    { policy: options.retry, logger: options.logger, description },
  );
}
