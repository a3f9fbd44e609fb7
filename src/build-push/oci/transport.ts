import * as http from 'node:http';
import * as https from 'node:https';
import { keepAliveAgent, timeoutError, watchBodyIdle, type HttpResponse } from '../../common/http';

export type Body = Buffer | string | (() => AsyncIterable<Buffer>);

export interface RegistryRequest {
  method: 'GET' | 'HEAD' | 'PUT' | 'POST' | 'PATCH' | 'DELETE';
  url: URL;
  headers: Record<string, string>;
  /** A buffer, or a factory of a fresh byte stream (so a request can be sent again). */
  body?: Body;
  idleTimeoutMs?: number;
}

/**
 * Sends one request and resolves when the response headers arrive. A streamed body is written
 * with back-pressure; when the server answers before the body is complete (a 401, a 4xx), the
 * rest is not sent.
 */
export function sendRequest(request: RegistryRequest): Promise<HttpResponse> {
  const { url } = request;
  const transport = url.protocol === 'https:' ? https : http;
  return new Promise((resolve, reject) => {
    let answered = false;
    const req = transport.request(
      url,
      {
        method: request.method,
        headers: request.headers,
        agent: keepAliveAgent(url.protocol, 8),
      },
      (res) => {
        answered = true;
        watchBodyIdle(res, request.idleTimeoutMs ?? 120_000);
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body: res });
      },
    );
    const timeout = request.idleTimeoutMs ?? 120_000;
    req.setTimeout(timeout, () => req.destroy(timeoutError(timeout)));
    req.on('error', (error) => {
      if (!answered) reject(error);
    });
    const body = request.body;
    if (body === undefined || typeof body === 'string' || Buffer.isBuffer(body)) {
      req.end(body);
      return;
    }
    void (async () => {
      try {
        for await (const chunk of body()) {
          if (answered || req.destroyed) return;
          if (!req.write(chunk)) {
            await new Promise<void>((done) => {
              const finish = () => {
                req.off('drain', finish);
                req.off('close', finish);
                done();
              };
              req.on('drain', finish);
              req.on('close', finish);
            });
          }
        }
        if (!req.destroyed) req.end();
      } catch (error) {
        req.destroy(error as Error);
      }
    })();
  });
}

export function header(response: HttpResponse, name: string): string | undefined {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
}
