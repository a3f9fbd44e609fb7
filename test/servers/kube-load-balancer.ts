import { randomInt } from 'node:crypto';
import * as net from 'node:net';

/** Where a Service's traffic can go right now: its ready pods' published ports. */
export type BackendsOf = (targetPort: number | string) => Array<{ host: string; port: number }>;

interface Balancer {
  address: string;
  servers: net.Server[];
}

/**
 * LoadBalancer Services of the Kubernetes double, as Azure's load balancer is to AKS: each
 * Service gets its own address (a random one in 127.0.0.0/8, so it can listen on the Service's
 * own ports, 80 included) and forwards each TCP connection to one of the Service's ready pods,
 * round robin, choosing them by the Service's selector at connection time (so a changed
 * selector moves new connections at once, as kube-proxy does). With no ready pod the
 * connection is reset.
 */
export class LoopbackLoadBalancers {
  private readonly balancers = new Map<string, Balancer>();
  private readonly sockets = new Set<net.Socket>();
  private turn = 0;

  /** Listens for a Service; returns its address (the same one while it exists). */
  async ensure(
    key: string,
    ports: Array<{ port: number; targetPort: number | string }>,
    backends: BackendsOf,
  ): Promise<string> {
    const existing = this.balancers.get(key);
    if (existing) return existing.address;
    for (let attempt = 0; ; attempt++) {
      const address = `127.${randomInt(1, 255)}.${randomInt(0, 256)}.${randomInt(1, 255)}`;
      const servers: net.Server[] = [];
      try {
        for (const { port, targetPort } of ports) {
          const server = net.createServer((socket) => this.forward(socket, backends(targetPort)));
          await new Promise<void>((resolve, reject) => {
            server.once('error', reject);
            server.listen(port, address, () => resolve());
          });
          servers.push(server);
        }
        this.balancers.set(key, { address, servers });
        return address;
      } catch (error) {
        for (const server of servers) server.close();
        if (attempt >= 20 || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') throw error;
      }
    }
  }

  release(key: string): void {
    const balancer = this.balancers.get(key);
    if (!balancer) return;
    this.balancers.delete(key);
    for (const server of balancer.servers) server.close();
  }

  async close(): Promise<void> {
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(
      [...this.balancers.values()].flatMap((balancer) =>
        balancer.servers.map((server) => new Promise((resolve) => server.close(resolve))),
      ),
    );
    this.balancers.clear();
  }

  private forward(client: net.Socket, backends: Array<{ host: string; port: number }>): void {
    this.sockets.add(client);
    client.on('close', () => this.sockets.delete(client));
    if (backends.length === 0) {
      client.resetAndDestroy();
      return;
    }
    const backend = backends[this.turn++ % backends.length];
    const upstream = net.connect(backend.port, backend.host);
    this.sockets.add(upstream);
    upstream.on('close', () => this.sockets.delete(upstream));
    client.pipe(upstream).pipe(client);
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop);
    upstream.on('error', drop);
  }
}
