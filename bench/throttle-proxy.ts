import * as net from 'node:net';
import { pipeline, Transform, type TransformCallback } from 'node:stream';

/**
 * A token bucket that may go into debt: `take(n)` always succeeds and returns how long to wait
 * before those bytes may leave, so the long-run rate is exact even when timers fire late (the
 * bucket refills from the real clock, up to `burst`).
 */
export class TokenBucket {
  private tokens: number;
  private last = performance.now();

  constructor(
    readonly bytesPerSecond: number,
    readonly burst: number,
  ) {
    this.tokens = burst;
  }

  /** Takes `bytes` and returns the milliseconds to wait until the bucket is out of debt. */
  take(bytes: number): number {
    const now = performance.now();
    this.tokens = Math.min(
      this.burst,
      this.tokens + ((now - this.last) * this.bytesPerSecond) / 1000,
    );
    this.last = now;
    this.tokens -= bytes;
    return this.tokens >= 0 ? 0 : (-this.tokens * 1000) / this.bytesPerSecond;
  }
}

/** Counts `bytes` and holds each slice back until its bucket allows it. */
class Throttle extends Transform {
  constructor(
    private readonly bucket: TokenBucket,
    private readonly onBytes: (bytes: number) => void,
  ) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, done: TransformCallback): void {
    this.forward(chunk).then(() => done(), done);
  }

  /** Slices no larger than the burst, so one big read cannot overdraw the bucket by much. */
  private async forward(chunk: Buffer): Promise<void> {
    for (let at = 0; at < chunk.length; at += this.bucket.burst) {
      const slice = chunk.subarray(at, at + this.bucket.burst);
      const wait = this.bucket.take(slice.length);
      if (wait > 0) await new Promise((resolve) => setTimeout(resolve, wait));
      this.onBytes(slice.length);
      this.push(slice);
    }
  }
}

export interface ThrottleProxyOptions {
  /** Port of the upstream on 127.0.0.1. */
  upstreamPort: number;
  /** Cap of each connection, in each direction, in bytes per second. */
  bytesPerSecond: number;
  /** Bytes a connection may send at once after idling; 5 ms worth by default. */
  burst?: number;
}

/** What went through the proxy since the last `resetStats`. */
export interface ProxyStats {
  connections: number;
  peakConcurrent: number;
  bytesDown: number;
  bytesUp: number;
}

/**
 * A plain TCP proxy on 127.0.0.1 that caps every connection on its own, the way Azure Storage
 * caps a single connection: a client that opens more connections gets more throughput. TLS
 * passes through untouched; the local certificate is valid for 127.0.0.1 on any port.
 */
export class ThrottleProxy {
  private server?: net.Server;
  private readonly sockets = new Set<net.Socket>();
  private open = 0;
  private stats: ProxyStats = { connections: 0, peakConcurrent: 0, bytesDown: 0, bytesUp: 0 };
  port = 0;

  constructor(private readonly options: ThrottleProxyOptions) {
    if (!(options.bytesPerSecond > 0)) throw new RangeError('bytesPerSecond must be positive');
  }

  get burst(): number {
    return this.options.burst ?? Math.max(16 * 1024, Math.round(this.options.bytesPerSecond / 200));
  }

  /** `upstreamUrl` (an https URL of the upstream) with the proxy's port instead. */
  url(upstreamUrl: string): string {
    const url = new URL(upstreamUrl);
    url.host = `127.0.0.1:${this.port}`;
    return url.toString().replace(/\/$/, '');
  }

  async start(): Promise<this> {
    const server = net.createServer({ allowHalfOpen: true }, (client) => this.relay(client));
    this.server = server;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(0, '127.0.0.1', () => resolve());
    });
    this.port = (server.address() as net.AddressInfo).port;
    return this;
  }

  /** Drops every connection still open and stops listening. */
  async stop(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Returns the counters and starts new ones, so each measured variant gets its own. */
  resetStats(): ProxyStats {
    const stats = this.stats;
    this.stats = { connections: 0, peakConcurrent: this.open, bytesDown: 0, bytesUp: 0 };
    return stats;
  }

  /** Pipes one client connection to a new upstream connection, each direction throttled. */
  private relay(client: net.Socket): void {
    const upstream = net.connect({
      port: this.options.upstreamPort,
      host: '127.0.0.1',
      allowHalfOpen: true,
    });
    for (const socket of [client, upstream]) {
      socket.setNoDelay(true);
      this.sockets.add(socket);
    }
    this.open++;
    this.stats.connections++;
    this.stats.peakConcurrent = Math.max(this.stats.peakConcurrent, this.open);
    const rate = this.options.bytesPerSecond;
    const up = new Throttle(new TokenBucket(rate, this.burst), (n) => (this.stats.bytesUp += n));
    const down = new Throttle(
      new TokenBucket(rate, this.burst),
      (n) => (this.stats.bytesDown += n),
    );
    // Half-closes pass through (allowHalfOpen); once either direction fails or both have
    // ended, both sockets go, so no connection outlives its peer.
    let ended = 0;
    const finish = (error?: Error | null) => {
      if (error || ++ended === 2) {
        client.destroy();
        upstream.destroy();
      }
    };
    pipeline(client, up, upstream, finish);
    pipeline(upstream, down, client, finish);
    let closed = 0;
    const forget = () => {
      if (++closed < 2) return;
      this.sockets.delete(client);
      this.sockets.delete(upstream);
      this.open--;
    };
    client.once('close', forget);
    upstream.once('close', forget);
  }
}
