import * as http from 'node:http';
import * as https from 'node:https';
import * as net from 'node:net';
import * as tls from 'node:tls';
import type { Duplex } from 'node:stream';
import { ConfigurationError, errorMessage, quote } from './errors';
import { HttpError } from './http-error';

/**
 * Which forward proxy a request goes through, read from the environment the way the runner's
 * own tools read it (@actions/http-client): HTTPS_PROXY / https_proxy for https targets,
 * HTTP_PROXY / http_proxy for http ones; NO_PROXY / no_proxy lists hosts that go direct. Loopback
 * targets never use a proxy.
 */
export function proxyFor(target: URL, env: NodeJS.ProcessEnv = process.env): URL | undefined {
  if (isLoopback(target.hostname)) return undefined;
  const https = target.protocol === 'https:';
  // Lower case first, an empty value as unset: as @actions/http-client reads them, so the actions
  // and core.getIDToken take the same route when a runner sets both spellings.
  const value = https ? env.https_proxy || env.HTTPS_PROXY : env.http_proxy || env.HTTP_PROXY;
  if (!value || value.trim() === '') return undefined;
  if (bypassesProxy(target, env.no_proxy || env.NO_PROXY)) return undefined;
  return parseProxyUrl(value.trim(), https ? 'HTTPS_PROXY' : 'HTTP_PROXY');
}

/**
 * NO_PROXY entries, comma-separated, case-insensitive: `*` (everything), a host name or IP,
 * `host:port`, or a domain that matches itself and its subdomains (`example.com` and
 * `.example.com` both match `a.example.com`).
 */
export function bypassesProxy(target: URL, noProxy: string | undefined): boolean {
  if (!noProxy) return false;
  const host = target.hostname.toLowerCase().replace(/^\[|\]$/g, '');
  const port = target.port || (target.protocol === 'https:' ? '443' : '80');
  const candidates = [host, `${host}:${port}`];
  return noProxy
    .split(',')
    .map((entry) => entry.trim().toLowerCase())
    .filter((entry) => entry !== '')
    .some(
      (entry) =>
        entry === '*' ||
        candidates.some(
          (candidate) =>
            candidate === entry || candidate.endsWith(entry.startsWith('.') ? entry : `.${entry}`),
        ),
    );
}

/** localhost, 127.0.0.0/8 and ::1: addresses that never leave this machine. */
export function isLoopback(hostname: string): boolean {
  const host = hostname.toLowerCase().replace(/^\[|\]$/g, '');
  return (
    host === 'localhost' ||
    host.endsWith('.localhost') ||
    host === '::1' ||
    (net.isIPv4(host) && host.startsWith('127.'))
  );
}

function parseProxyUrl(value: string, variable: string): URL {
  let url: URL;
  try {
    // A proxy given as host:port means http://host:port, as curl reads it.
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(value) ? value : `http://${value}`);
  } catch {
    throw new ConfigurationError(
      `Invalid ${variable} ${quote(value)}. Expected a proxy URL such as http://proxy.corp:3128.`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new ConfigurationError(
      `Invalid ${variable} ${quote(value)}. Expected an http:// or https:// proxy URL ` +
        `(SOCKS proxies are not supported).`,
    );
  }
  return url;
}

/** The Proxy-Authorization header for a proxy URL with user:password, if any. */
export function proxyAuthorization(proxy: URL): string | undefined {
  if (!proxy.username) return undefined;
  const user = decodeURIComponent(proxy.username);
  const password = decodeURIComponent(proxy.password);
  return `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
}

/**
 * Why a request got no answer at all (a name that does not resolve, a refused connection, a
 * proxy that would not tunnel), and what to check.
 */
export function unreachable(origin: string, error: unknown): string {
  const variable = origin.startsWith('http:') ? 'HTTP_PROXY' : 'HTTPS_PROXY';
  return (
    `${origin} did not answer (${errorMessage(error)}). Check that this runner reaches it, ` +
    `directly or through the proxy ${variable} names (hosts in NO_PROXY go direct).`
  );
}

/** A proxy URL as it may be logged: without its password. */
export function describeProxy(proxy: URL): string {
  return `${proxy.protocol}//${proxy.host}`;
}

type ConnectionCallback = (error: Error | null, socket?: Duplex) => void;

/**
 * An https agent whose connections are tunnels through a forward proxy: CONNECT host:port, then
 * TLS with the target (its name, its certificate) over the tunnel. Connections are kept alive and
 * reused like any other agent's; the proxy never sees the requests or their credentials.
 */
export class TunnelAgent extends https.Agent {
  constructor(
    private readonly proxy: URL,
    options: https.AgentOptions,
    private readonly connectTimeoutMs: number,
  ) {
    super(options);
  }

  override createConnection(
    options: tls.ConnectionOptions & { host?: string; port?: number },
    callback: ConnectionCallback,
  ): Duplex | undefined {
    const host = options.host ?? 'localhost';
    const port = options.port ?? 443;
    const authority = `${net.isIPv6(host) ? `[${host}]` : host}:${port}`;
    const headers: Record<string, string> = { host: authority };
    const authorization = proxyAuthorization(this.proxy);
    if (authorization) headers['proxy-authorization'] = authorization;
    const transport = this.proxy.protocol === 'https:' ? https : http;
    const request = transport.request({
      host: this.proxy.hostname.replace(/^\[|\]$/g, ''),
      port: this.proxy.port || (this.proxy.protocol === 'https:' ? 443 : 80),
      method: 'CONNECT',
      path: authority,
      headers,
      agent: false,
    });
    let settled = false;
    const fail = (error: Error) => {
      if (settled) return;
      settled = true;
      request.destroy();
      callback(error);
    };
    request.setTimeout(this.connectTimeoutMs, () =>
      fail(
        Object.assign(
          new Error(
            `proxy ${describeProxy(this.proxy)} did not answer CONNECT ${authority} ` +
              `within ${this.connectTimeoutMs} ms`,
          ),
          { code: 'ETIMEDOUT' },
        ),
      ),
    );
    request.once('error', (error) =>
      fail(
        Object.assign(
          new Error(
            `cannot reach proxy ${describeProxy(this.proxy)}: ${errorMessage(error)}. Check ` +
              `HTTPS_PROXY and NO_PROXY.`,
          ),
          { code: (error as NodeJS.ErrnoException).code },
        ),
      ),
    );
    request.once('connect', (response, socket, head) => {
      if (response.statusCode !== 200) {
        socket.destroy();
        fail(proxyRefusal(this.proxy, authority, response.statusCode ?? 0));
        return;
      }
      settled = true;
      request.setTimeout(0);
      if (head.length > 0) socket.unshift(head);
      const secure = tls.connect({
        ...options,
        socket,
        servername: options.servername ?? (net.isIP(host) ? undefined : host),
      });
      callback(null, secure);
    });
    request.end();
    return undefined;
  }
}

function proxyRefusal(proxy: URL, authority: string, status: number): Error {
  if (status === 407) {
    return new ConfigurationError(
      `The proxy ${describeProxy(proxy)} requires authentication (HTTP 407) for CONNECT ` +
        `${authority}. Put the proxy's user and password in HTTPS_PROXY ` +
        `(http://user:password@host:port), or list the host in NO_PROXY.`,
    );
  }
  // A 502/503/504 from a proxy is often passing: the retry policy treats it as transient.
  return new HttpError(
    `the proxy ${describeProxy(proxy)} refused CONNECT ${authority}: HTTP ${status}`,
    status,
    'ProxyRefused',
  );
}
