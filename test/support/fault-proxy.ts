import * as http from 'node:http';
import * as https from 'node:https';
import { localTls } from './tls';
import { closeServer, listenOnLoopback } from './ports';

/** What the proxy does with one request. */
export type Fault =
  | { kind: 'pass' }
  /** Answers with this status (and body) itself; the upstream never sees the request. */
  | { kind: 'status'; status: number; headers?: Record<string, string>; body?: string }
  /** Forwards, then drops the client connection after this many body bytes. */
  | { kind: 'cut'; afterBytes: number }
  /**
   * Forwards this many body bytes, then sends nothing more and keeps the connection open, as
   * a stalled network path or a proxy that buffers does; the client must time it out.
   */
  | { kind: 'stall'; afterBytes: number }
  /** Forwards, but first waits for `before` (e.g. a test overwriting the blob). */
  | { kind: 'hold'; before: () => Promise<void> }
  /** Forwards this many bytes of the request body, then drops both connections (an upload cut). */
  | { kind: 'cut-request'; afterBytes: number }
  /** Forwards the whole request, then drops the connection instead of relaying the answer. */
  | { kind: 'drop-response' };

export interface ProxiedRequest {
  /** Zero-based count of requests seen so far. */
  index: number;
  method: string;
  path: string;
  headers: http.IncomingHttpHeaders;
}

/**
 * An HTTPS reverse proxy in front of Azurite or the registry that injects faults per request: 503s with
 * Retry-After, connections dropped mid-body, or a pause. It terminates TLS with the local
 * certificate, so the action under test connects to it exactly as to the real service.
 */
export class FaultProxy {
  readonly requests: ProxiedRequest[] = [];
  private server?: https.Server;
  private port = 0;
  private readonly agent = new https.Agent({ keepAlive: true });
  /**
   * Forwards the client's Host header unchanged, as a transparent proxy must for requests
   * whose signature covers it (S3's SigV4); otherwise it names the upstream.
   */
  preserveHost = false;
  /**
   * Names itself instead of the upstream in the URLs answers carry (a challenge's realm, a
   * Location), as a reverse proxy that publishes a service under its own name must: a registry
   * client sends its token only to a realm on the registry's own host.
   */
  advertiseSelf = false;

  constructor(
    private readonly upstream: URL,
    public decide: (request: ProxiedRequest) => Fault = () => ({ kind: 'pass' }),
  ) {}

  /** `upstreamUrl` with the proxy's origin. */
  url(upstreamUrl: string): string {
    const url = new URL(upstreamUrl);
    url.host = `127.0.0.1:${this.port}`;
    return url.toString().replace(/\/$/, '');
  }

  async start(): Promise<this> {
    const tls = localTls();
    this.server = https.createServer({ cert: tls.cert, key: tls.key }, (req, res) => {
      void this.handle(req, res);
    });
    this.port = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    this.agent.destroy();
    await closeServer(this.server);
  }

  private advertised(headers: http.IncomingHttpHeaders): http.IncomingHttpHeaders {
    if (!this.advertiseSelf) return headers;
    const upstream = `https://${this.upstream.host}`;
    const self = `https://127.0.0.1:${this.port}`;
    const rewritten = { ...headers };
    for (const name of ['www-authenticate', 'location'] as const) {
      const value = rewritten[name];
      if (typeof value === 'string') rewritten[name] = value.split(upstream).join(self);
    }
    return rewritten;
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const request: ProxiedRequest = {
      index: this.requests.length,
      method: req.method ?? 'GET',
      path: req.url ?? '/',
      headers: req.headers,
    };
    this.requests.push(request);
    const fault = this.decide(request);
    if (fault.kind === 'status') {
      req.resume();
      const body = req.method === 'HEAD' ? '' : (fault.body ?? '');
      res.writeHead(fault.status, {
        'content-length': String(Buffer.byteLength(fault.body ?? '')),
        ...fault.headers,
      });
      res.end(body);
      return;
    }
    if (fault.kind === 'hold') await fault.before();
    const upstream = https.request(
      {
        host: this.upstream.hostname,
        port: this.upstream.port,
        method: req.method,
        path: req.url,
        headers: this.preserveHost ? req.headers : { ...req.headers, host: this.upstream.host },
        agent: this.agent,
      },
      (answer) => {
        if (fault.kind === 'drop-response') {
          answer.resume();
          req.socket.destroy();
          return;
        }
        res.writeHead(answer.statusCode ?? 502, this.advertised(answer.headers));
        if (fault.kind === 'stall') {
          let sent = 0;
          answer.on('data', (chunk: Buffer) => {
            if (sent < fault.afterBytes) res.write(chunk.subarray(0, fault.afterBytes - sent));
            sent += chunk.length;
          });
          // Closed by the client's timeout; the rest of the upstream answer is discarded.
          res.on('close', () => answer.destroy());
          return;
        }
        if (fault.kind !== 'cut') {
          answer.pipe(res);
          return;
        }
        let sent = 0;
        answer.on('data', (chunk: Buffer) => {
          if (sent >= fault.afterBytes) return;
          const room = fault.afterBytes - sent;
          sent += Math.min(room, chunk.length);
          res.write(chunk.subarray(0, room), () => {
            if (sent >= fault.afterBytes) {
              answer.destroy();
              res.socket?.destroy();
            }
          });
        });
        answer.on('end', () => res.end());
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    if (fault.kind !== 'cut-request') {
      req.pipe(upstream);
      return;
    }
    let forwarded = 0;
    if (fault.afterBytes === 0) {
      upstream.flushHeaders();
      setTimeout(() => {
        upstream.destroy();
        req.socket.destroy();
      }, 50);
      return;
    }
    req.on('data', (chunk: Buffer) => {
      if (forwarded >= fault.afterBytes) return;
      const room = fault.afterBytes - forwarded;
      forwarded += Math.min(room, chunk.length);
      upstream.write(chunk.subarray(0, room), () => {
        if (forwarded >= fault.afterBytes) {
          // Give the upstream a moment to store what it got, as after a real network cut.
          setTimeout(() => {
            upstream.destroy();
            req.socket.destroy();
          }, 50);
        }
      });
    });
    req.on('end', () => upstream.end());
  }
}
