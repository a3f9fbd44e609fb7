import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import {
  chownSync,
  existsSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as net from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { listenOnLoopback, stopChild, waitForPort } from './ports';

export const SQUID = '/usr/sbin/squid';
const BASIC_AUTH_HELPER = '/usr/lib/squid/basic_ncsa_auth';

/** One CONNECT as squid logged it (when the tunnel closed). */
export interface ProxyTunnel {
  /** The proxy account that asked, `-` for none. */
  user: string;
  /** Squid's result and the HTTP status it answered: TCP_TUNNEL/200, TCP_DENIED/407... */
  result: string;
  method: string;
  /** The CONNECT target, `host:port`. */
  target: string;
  /** The address squid connected to, `ip:port` (`-:-` when it connected nowhere). */
  server: string;
}

/** One connection a forwarder accepted: for which public name, from which address. */
export interface ForwardedConnection {
  hostName: string;
  peer: string;
}

interface Route {
  hostName: string;
  /** The loopback address the proxy resolves the name to; the forwarder listens there on 443. */
  address: string;
  target: { host: string; port: number };
  server?: net.Server;
}

/**
 * A corporate network for the proxy tests: production host names (`login.microsoftonline.com`,
 * `<account>.blob.core.windows.net`...) resolve nowhere on this machine, and the only way to them
 * is a real forward proxy, Debian's squid, started here with its own configuration. Its
 * `hosts_file` maps each name to a loopback address of its own in a random 127.X.Y.0/24 (parallel
 * runs do not collide), where a TCP forwarder listens on port 443 and pipes the bytes to the
 * local service (TLS stays end to end: the client verifies the service's certificate for the
 * production name). Squid asks for a proxy account (basic auth, as corporate proxies do), allows
 * CONNECT to port 443 only, connects out from its own address (127.X.Y.1), and logs each CONNECT.
 * The forwarders record who connected, so a test can tell that every connection came from squid.
 *
 * Squid runs as root only to drop to the `proxy` user, so its files are handed to that user; the
 * forwarders listen on port 443, which needs root too (as do the set-up scripts).
 */
export class ProxiedNetwork {
  readonly user = 'ci-runner';
  readonly password = randomBytes(12).toString('base64url');
  readonly connections: ForwardedConnection[] = [];
  private readonly subnet = `127.${randomInt(1, 255)}.${randomInt(1, 255)}`;
  private readonly routes = new Map<string, Route>();
  private readonly sockets = new Set<net.Socket>();
  private readonly service = `proxytest${randomBytes(4).toString('hex')}`;
  private child?: ChildProcess;
  private dir = '';
  private port = 0;

  /** Where squid listens, and the address its connections to the services come from. */
  get proxyAddress(): string {
    return `${this.subnet}.1`;
  }

  /** HTTPS_PROXY as a runner's administrator sets it: the proxy account in the URL. */
  get proxyUrl(): string {
    return `http://${this.user}:${encodeURIComponent(this.password)}@${this.proxyAddress}:${this.port}`;
  }

  /**
   * Makes `hostName` (port 443) reach `target`, a local service's origin such as
   * `https://127.0.0.1:41234`, through the proxy. Call before start.
   */
  route(hostName: string, target: string): this {
    if (this.child) throw new Error('routes are read when squid starts');
    const url = new URL(target);
    this.routes.set(hostName.toLowerCase(), {
      hostName: hostName.toLowerCase(),
      address: `${this.subnet}.${this.routes.size + 2}`,
      target: { host: url.hostname, port: Number(url.port) },
    });
    return this;
  }

  async start(): Promise<this> {
    if (!existsSync(SQUID)) {
      throw new Error(`${SQUID} is missing: run scripts/setup.sh (scripts/setup.d/45-squid.sh).`);
    }
    if (process.getuid?.() !== 0) {
      throw new Error(
        'The proxy tests listen on port 443 of loopback addresses, which needs root (as ' +
          'scripts/setup.sh does).',
      );
    }
    for (const route of this.routes.values()) {
      route.server = net.createServer((socket) => this.forward(route, socket));
      await listenOnLoopback(route.server, route.address, 443);
    }
    // A port that was free on squid's address a moment ago.
    const probe = net.createServer();
    this.port = await listenOnLoopback(probe, this.proxyAddress);
    await new Promise((resolve) => probe.close(resolve));

    this.dir = mkdtempSync(path.join(tmpdir(), 'squid-'));
    const file = (name: string) => path.join(this.dir, name);
    writeFileSync(
      file('hosts'),
      [...this.routes.values()].map((route) => `${route.address} ${route.hostName}\n`).join(''),
    );
    const hash = execFileSync('openssl', ['passwd', '-apr1', '-stdin'], { input: this.password });
    writeFileSync(file('passwd'), `${this.user}:${hash.toString().trim()}\n`);
    writeFileSync(file('squid.conf'), this.config(file));
    // Squid drops from root to the proxy user, which must be able to write its logs here.
    const proxyUser = /^proxy:[^:]*:(\d+):(\d+):/m.exec(readFileSync('/etc/passwd', 'utf8'));
    if (proxyUser) {
      for (const name of ['', ...readdirSync(this.dir)]) {
        chownSync(path.join(this.dir, name), Number(proxyUser[1]), Number(proxyUser[2]));
      }
    }

    let output = '';
    const child = spawn(SQUID, ['-N', '-n', this.service, '-f', file('squid.conf')], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    this.child = child;
    child.stdout!.on('data', (chunk) => (output = (output + chunk).slice(-4000)));
    child.stderr!.on('data', (chunk) => (output = (output + chunk).slice(-4000)));
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) =>
        reject(new Error(`squid exited with code ${code} while starting: ${output}${this.log}`)),
      ),
    );
    await Promise.race([waitForPort(this.port, 30_000, this.proxyAddress), exited]);
    exited.catch(() => undefined);
    return this;
  }

  private config(file: (name: string) => string): string {
    return `# A corporate forward proxy for the proxy tests (generated by test/support/proxied-network.ts).
http_port ${this.proxyAddress}:${this.port}
visible_hostname corporate-proxy.test
pid_filename ${file('squid.pid')}
cache_log ${file('cache.log')}
coredump_dir ${this.dir}
logformat tunnels %un %Ss/%03>Hs %rm %ru %<a:%<p
access_log stdio:${file('access.log')} logformat=tunnels
buffered_logs off
# The only names this proxy knows; nothing answers DNS here, so any other name fails.
hosts_file ${file('hosts')}
dns_nameservers 127.0.0.1
dns_timeout 5 seconds
tcp_outgoing_address ${this.proxyAddress}
cache deny all
cache_mem 8 MB
netdb_filename none
pinger_enable off
icp_port 0
htcp_port 0
shutdown_lifetime 0 seconds
auth_param basic program ${BASIC_AUTH_HELPER} ${file('passwd')}
auth_param basic realm corporate proxy
auth_param basic children 2 startup=1 idle=1
acl SSL_ports port 443
acl runners src 127.0.0.0/8
acl staff proxy_auth REQUIRED
http_access deny CONNECT !SSL_ports
http_access deny !runners
http_access allow staff
http_access deny all
`;
  }

  /** Pipes one connection to the route's service, recording where it came from. */
  private forward(route: Route, socket: net.Socket): void {
    this.connections.push({ hostName: route.hostName, peer: socket.remoteAddress ?? '' });
    const upstream = net.connect(route.target.port, route.target.host);
    for (const end of [socket, upstream]) {
      this.sockets.add(end);
      end.once('close', () => this.sockets.delete(end));
    }
    socket.on('error', () => upstream.destroy());
    upstream.on('error', () => socket.destroy());
    socket.pipe(upstream).pipe(socket);
  }

  /**
   * Every CONNECT squid logged. Squid logs a tunnel when it closes, a moment after the client
   * hangs up, so this waits until the log accounts for every connection the forwarders took
   * (and, given `until`, until the log satisfies it: a refusal the forwarders never saw).
   */
  async tunnels(
    until: (tunnels: ProxyTunnel[]) => boolean = () => true,
    timeoutMs = 15_000,
  ): Promise<ProxyTunnel[]> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const tunnels = this.readAccessLog();
      const carried = tunnels.filter((tunnel) => tunnel.server !== '-:-').length;
      const complete = carried >= this.connections.length && until(tunnels);
      if (complete || Date.now() > deadline) return tunnels;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
  }

  private readAccessLog(): ProxyTunnel[] {
    const log = path.join(this.dir, 'access.log');
    if (!existsSync(log)) return [];
    return readFileSync(log, 'utf8')
      .split('\n')
      .filter((line) => line.trim() !== '')
      .map((line) => {
        const [user, result, method, target, server] = line.trim().split(/\s+/);
        return { user, result, method, target, server };
      });
  }

  /** Squid's own log, for failing tests. */
  get log(): string {
    const log = path.join(this.dir, 'cache.log');
    return this.dir && existsSync(log) ? readFileSync(log, 'utf8').slice(-4000) : '';
  }

  async stop(): Promise<void> {
    // shutdown_lifetime 0: squid exits at once on SIGTERM, closing the tunnels still open.
    await stopChild(this.child);
    // Squid removes its shared memory segments when it exits normally; not when it crashed.
    for (const name of existsSync('/dev/shm') ? readdirSync('/dev/shm') : []) {
      if (name.startsWith(`${this.service}-`)) rmSync(path.join('/dev/shm', name), { force: true });
    }
    for (const socket of this.sockets) socket.destroy();
    await Promise.all(
      [...this.routes.values()].map(
        (route) =>
          new Promise((resolve) =>
            route.server ? route.server.close(resolve) : resolve(undefined),
          ),
      ),
    );
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}
