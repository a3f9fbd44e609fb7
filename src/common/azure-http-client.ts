import type { IncomingMessage } from 'node:http';
import { Readable } from 'node:stream';
import {
  createHttpHeaders,
  type HttpClient,
  type HttpHeaders,
  type PipelineRequest,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';
import { readSource, type BodySource } from './body-source';
import { bulkGet } from './bulk-get';
import { ConnectionPool, readBody, send, sharedPool, type HttpRequest } from './http';

/** Bodies the SDK reads as text (token answers, XML listings) are small; bytes are streamed. */
const TEXT_BODY_LIMIT = 64 * 1024 * 1024;

/** A request that got no answer at all: the name did not resolve, the proxy refused, no connection. */
export interface TransportFailure {
  url: URL;
  error: Error;
  /** When it failed (ms since the epoch). */
  at: number;
}

/** The SDK's HttpClient, remembering the last request that got no answer. */
export interface TransportHttpClient extends HttpClient {
  /**
   * @azure/identity reports such a failure as a bare `network_error`, without its cause (a name
   * that does not resolve, a proxy that wants a password); this keeps the cause for the error.
   */
  lastFailure?: TransportFailure;
}

/** What the transport needs from one SDK request, whichever interface the SDK used. */
export interface SdkRequest {
  url: string;
  method: string;
  /** Names in lower case. */
  headers: Record<string, string>;
  body: PipelineRequest['body'];
  /** The SDK's per-try timeout in ms; 0 for none. */
  timeout: number;
  abortSignal?: PipelineRequest['abortSignal'];
  /** Statuses whose body the SDK streams instead of reading as text. */
  streamStatuses?: Set<number>;
}

export interface SdkAnswer {
  status: number;
  headers: HttpHeaders;
  /** The body, unread, when the SDK streams this status. */
  stream?: IncomingMessage;
  /** The same, for a bulk GET (see bulk-get.ts). */
  source?: BodySource;
  /** The body as text otherwise. */
  text?: string;
}

/**
 * The Azure SDK's HttpClient over this project's one transport, so Entra (through
 * @azure/identity) and the storage SDK get the same proxy routing, https-only credential rule,
 * keep-alive pool and idle timeouts as every other request. The SDK's own pipeline keeps its
 * policies (bearer tokens, same-origin redirects, and retries where the caller leaves them on);
 * only the wire is ours.
 */
export function transportHttpClient(pool: ConnectionPool = sharedPool()): TransportHttpClient {
  const client: TransportHttpClient = {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const answer = await exchange(pool, {
        url: request.url,
        method: request.method,
        headers: request.headers.toJSON(),
        body: request.body,
        timeout: request.timeout,
        abortSignal: request.abortSignal,
        streamStatuses: request.streamResponseStatusCodes,
      }).catch((error: Error) => {
        client.lastFailure = { url: new URL(request.url), error, at: Date.now() };
        throw error;
      });
      return {
        request,
        status: answer.status,
        headers: answer.headers,
        readableStreamBody: answer.stream,
        bodyAsText: answer.text,
      };
    },
  };
  return client;
}

/**
 * Sends one SDK request over the transport and reads or streams its answer. A request the SDK
 * gave no timeout gets `idleTimeoutMs`.
 */
export async function exchange(
  pool: ConnectionPool,
  request: SdkRequest,
  idleTimeoutMs = 60_000,
  /** A GET of a large body its caller drains itself: sent as a bulk GET. */
  bulk = false,
): Promise<SdkAnswer> {
  const { headers } = request;
  const body = await requestBody(request.body);
  if (body !== undefined && headers['content-length'] === undefined) {
    headers['content-length'] = String(Buffer.byteLength(body));
  }
  const url = new URL(request.url);
  const common = {
    url,
    headers,
    pool,
    idleTimeoutMs: request.timeout > 0 ? request.timeout : idleTimeoutMs,
    signal: abortSignal(request.abortSignal),
    // A SAS rides in the query string: refused over plain http like an Authorization header.
    carriesCredential: url.searchParams.has('sig'),
  };
  const streams = request.streamStatuses;
  const streamed = (status: number) =>
    streams?.has(status) || streams?.has(Number.POSITIVE_INFINITY);
  if (bulk && request.method === 'GET' && body === undefined) {
    const response = await bulkGet(common);
    const answerHeaders = sdkHeaders(response.headers);
    if (streamed(response.status)) {
      return { status: response.status, headers: answerHeaders, source: response.body };
    }
    const text = (await readSource(response.body, TEXT_BODY_LIMIT)).toString('utf8');
    return { status: response.status, headers: answerHeaders, text };
  }
  const response = await send({
    ...common,
    method: request.method as HttpRequest['method'],
    body,
  });
  const responseHeaders = sdkHeaders(response.headers);
  if (streamed(response.status)) {
    return { status: response.status, headers: responseHeaders, stream: response.body };
  }
  const text = (await readBody(response.body, TEXT_BODY_LIMIT)).toString('utf8');
  return { status: response.status, headers: responseHeaders, text };
}

function sdkHeaders(headers: IncomingMessage['headers']): HttpHeaders {
  const converted = createHttpHeaders();
  for (const [name, value] of Object.entries(headers)) {
    if (value !== undefined) converted.set(name, Array.isArray(value) ? value.join(', ') : value);
  }
  return converted;
}

/** The SDK's body as what the transport sends: text or bytes (SDK uploads are small here). */
async function requestBody(body: PipelineRequest['body']): Promise<Buffer | string | undefined> {
  if (body === undefined || body === null) return undefined;
  if (typeof body === 'string') return body;
  if (Buffer.isBuffer(body)) return body;
  if (body instanceof ArrayBuffer) return Buffer.from(body);
  if (ArrayBuffer.isView(body)) return Buffer.from(body.buffer, body.byteOffset, body.byteLength);
  const stream = typeof body === 'function' ? body() : body;
  if (stream instanceof Readable) {
    const chunks: Buffer[] = [];
    for await (const chunk of stream) chunks.push(Buffer.from(chunk as Uint8Array));
    return Buffer.concat(chunks);
  }
  throw new Error('This HTTP client sends text, bytes and Node streams only.');
}

/** A Node AbortSignal that follows the SDK's AbortSignalLike. */
function abortSignal(like: PipelineRequest['abortSignal']): AbortSignal | undefined {
  if (!like) return undefined;
  if (like instanceof AbortSignal) return like;
  const controller = new AbortController();
  if (like.aborted) controller.abort();
  else like.addEventListener('abort', () => controller.abort(), { once: true });
  return controller.signal;
}
