import { Readable } from 'node:stream';
import {
  createHttpHeaders,
  type HttpClient,
  type PipelineRequest,
  type PipelineResponse,
} from '@azure/core-rest-pipeline';
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

/**
 * The Azure SDK's HttpClient over this project's one transport, so Entra (through
 * @azure/identity) and the storage SDK get the same proxy routing, https-only credential rule,
 * keep-alive pool and idle timeouts as every other request. The SDK's own pipeline keeps its
 * policies (retries, bearer tokens, redirects); only the wire is ours.
 */
export function transportHttpClient(pool: ConnectionPool = sharedPool()): TransportHttpClient {
  const client: TransportHttpClient = {
    async sendRequest(request: PipelineRequest): Promise<PipelineResponse> {
      const headers = request.headers.toJSON();
      const body = await requestBody(request.body);
      if (body !== undefined && headers['content-length'] === undefined) {
        headers['content-length'] = String(Buffer.byteLength(body));
      }
      const url = new URL(request.url);
      let response;
      try {
        response = await send({
          method: request.method as HttpRequest['method'],
          url,
          headers,
          body,
          pool,
          idleTimeoutMs: request.timeout > 0 ? request.timeout : 60_000,
          signal: abortSignal(request.abortSignal),
        });
      } catch (error) {
        client.lastFailure = { url, error: error as Error, at: Date.now() };
        throw error;
      }
      const responseHeaders = createHttpHeaders();
      for (const [name, value] of Object.entries(response.headers)) {
        if (value !== undefined) {
          responseHeaders.set(name, Array.isArray(value) ? value.join(', ') : value);
        }
      }
      const streams = request.streamResponseStatusCodes;
      if (streams?.has(response.status) || streams?.has(Number.POSITIVE_INFINITY)) {
        return {
          request,
          status: response.status,
          headers: responseHeaders,
          readableStreamBody: response.body,
        };
      }
      const text = (await readBody(response.body, TEXT_BODY_LIMIT)).toString('utf8');
      return { request, status: response.status, headers: responseHeaders, bodyAsText: text };
    },
  };
  return client;
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
  const controller = new AbortController();
  if (like.aborted) controller.abort();
  else like.addEventListener('abort', () => controller.abort(), { once: true });
  return controller.signal;
}
