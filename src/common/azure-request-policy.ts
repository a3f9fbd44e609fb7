import { Readable } from 'node:stream';
import {
  toHttpHeadersLike,
  type CompatResponse,
  type RequestPolicy,
  type WebResourceLike,
} from '@azure/core-http-compat';
import type { PipelineRequest } from '@azure/core-rest-pipeline';
import { exchange } from './azure-http-client';
import { streamBody, type BodySource } from './body-source';
import type { ConnectionPool } from './http';

export interface RequestPolicyOptions {
  /** A request the SDK gave no timeout fails after this long without data. Default 60 s. */
  idleTimeoutMs?: number;
  /** Streamed bodies the caller takes for itself, instead of the SDK (see BodyClaims). */
  claims?: BodyClaims;
}

/**
 * The transport adapter (transportHttpClient) in the shape @azure/storage-blob takes as
 * `httpClient` in its pipeline options: the older RequestPolicy, which the SDK converts back to
 * an HttpClient. The request it is given stands for the SDK's own, so it is handed back with
 * the answer.
 */
export function transportRequestPolicy(
  pool: ConnectionPool,
  options: RequestPolicyOptions = {},
): RequestPolicy {
  return {
    async sendRequest(request: WebResourceLike): Promise<CompatResponse> {
      // A body its caller claimed is read straight off the connection (see bulk-get.ts).
      const claimed = options.claims?.claims(request.abortSignal) ?? false;
      const answer = await exchange(
        pool,
        {
          url: request.url,
          method: request.method,
          headers: request.headers.toJson(),
          body: request.body as PipelineRequest['body'],
          timeout: request.timeout,
          abortSignal: request.abortSignal,
          streamStatuses: request.streamResponseStatusCodes,
        },
        options.idleTimeoutMs,
        claimed,
      );
      const body = answer.source ?? (answer.stream && streamBody(answer.stream));
      const stream = body && options.claims?.handOver(request.abortSignal, body);
      return {
        request,
        status: answer.status,
        headers: toHttpHeadersLike(answer.headers),
        readableStreamBody: stream ?? answer.stream,
        bodyAsText: answer.text,
      };
    },
  };
}

type Signal = WebResourceLike['abortSignal'];

/**
 * Lets a caller take the streamed body of one SDK call straight from the transport. The SDK
 * still sends the request and checks the answer (status, headers, errors), but the socket's
 * bytes go to the caller as the transport delivered them, and the SDK wraps a stand-in that
 * never produces any. @azure/storage-blob wraps a download's body in a stream of its own that
 * would re-request the rest itself, adds a hop per chunk, and reports a dropped connection or
 * an idle timeout as "The operation was aborted."; fetch-model's engine resumes ranges itself
 * and needs the transport's own error (ECONNRESET, ETIMEDOUT) to say what happened.
 */
export class BodyClaims {
  private readonly taken = new WeakMap<object, (body: BodySource) => void>();

  /**
   * Runs `call` with an abort signal that marks its request; resolves with the call's result
   * and the body of its streamed answer, if it had one. On failure any claimed body is
   * destroyed, so its connection is not left half-read.
   */
  async claim<T>(
    call: (abortSignal: AbortSignal) => Promise<T>,
  ): Promise<{ result: T; body?: BodySource }> {
    const signal = new AbortController().signal;
    let body: BodySource | undefined;
    this.taken.set(signal, (claimed) => {
      // Only one answer per call is expected; an earlier one must not hold its connection.
      body?.destroy();
      body = claimed;
    });
    try {
      return { result: await call(signal), body };
    } catch (error) {
      body?.destroy();
      throw error;
    } finally {
      this.taken.delete(signal);
    }
  }

  /** Whether the request with this signal has its body claimed. */
  claims(signal: Signal): boolean {
    return signal !== undefined && this.taken.has(signal);
  }

  /** The transport's side: gives a claimed body to its claimant and the SDK a stand-in. */
  handOver(signal: Signal, body: BodySource): Readable | undefined {
    const take = signal ? this.taken.get(signal) : undefined;
    if (!take) return undefined;
    take(body);
    return new Readable({ read() {} });
  }
}
