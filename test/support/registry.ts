import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { createHash, createPrivateKey, createPublicKey, randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  AcrDataEndpoint,
  AcrLoginServer,
  libtrustKeyId,
  type AcrTokenOptions,
} from '../servers/acr';
import type { SigningKey } from '../servers/jwt';
import { freePort, waitForPort, stopChild } from './ports';
import { localTls } from './tls';

export const REGISTRY_BINARY = '/usr/bin/docker-registry';
export const TOKEN_ISSUER = 'acr-token-double';

export type RegistryOptions = Pick<
  AcrTokenOptions,
  'tenantId' | 'entraKeys' | 'users' | 'grant' | 'accessTokenLifetimeSeconds'
> & {
  /**
   * The registry's public name, e.g. myacr.azurecr.io, and its data endpoint's, e.g.
   * myacr.eastus.data.azurecr.io: what image references, the token service and redirects name
   * in the proxy tests, where only the proxy routes them (port 443) here. 127.0.0.1:<port> and
   * 127.0.0.2:<port> otherwise.
   */
  hostName?: string;
  dataHostName?: string;
};

/**
 * The real Distribution registry (Debian's docker-registry) as a child process, behind the ACR
 * login-server double, which clients reach over HTTPS on 127.0.0.1 with the local certificate.
 * The registry has token auth on: it answers 401 with a Bearer challenge whose realm is the login
 * server's /oauth2/token (the registry's own host, as on ACR), and accepts only JWTs signed by
 * the double's key, whose certificate is its rootcertbundle. Blob reads are redirected, as ACR
 * redirects them, to a data endpoint on another host (127.0.0.2) that serves signed URLs and
 * refuses a request that also carries an Authorization header. dockerd treats 127.0.0.0/8 as
 * insecure registries, so it talks to them over HTTPS without verifying the certificate.
 */
export class Registry {
  private child?: ChildProcess;
  private dir = '';
  port = 0;
  /** The login server: token endpoints, and the registry's front door. */
  tokens!: AcrLoginServer;
  data!: AcrDataEndpoint;
  private stderr = '';

  constructor(private readonly options: RegistryOptions) {}

  /** The registry name in image references, and the token `service`: `host:port` or its public name. */
  get host(): string {
    return this.options.hostName ?? `127.0.0.1:${this.port}`;
  }

  /** Where the login server listens, for fixtures that reach it directly. */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    const tls = localTls();
    this.dir = mkdtempSync(path.join(tmpdir(), 'registry-'));
    this.port = await freePort();
    const internalPort = await freePort();
    const upstream = new URL(`http://127.0.0.1:${internalPort}`);
    const signingKey = tokenSigningKey(this.dir);
    this.data = await new AcrDataEndpoint({
      tls,
      address: '127.0.0.2',
      upstream,
      pullToken: (repository) => this.bearer(repository, ['pull']),
      hostName: this.options.dataHostName,
    }).start();
    this.tokens = await new AcrLoginServer({
      ...this.options,
      tls,
      service: this.host,
      issuer: TOKEN_ISSUER,
      signingKey,
      upstream,
      data: this.data,
      port: this.port,
    }).start();
    const config = {
      version: 0.1,
      log: { level: 'warn', accesslog: { disabled: true } },
      storage: {
        filesystem: { rootdirectory: path.join(this.dir, 'data') },
        delete: { enabled: true },
        maintenance: { uploadpurging: { enabled: false } },
      },
      http: {
        // Only the login server talks to it, over loopback; clients see the login server's TLS.
        addr: `127.0.0.1:${internalPort}`,
        secret: randomBytes(16).toString('hex'),
        // Location headers relative to the request, as ACR sends them; it also keeps clients
        // that reach the registry through the fault proxy going through the proxy.
        relativeurls: true,
      },
      auth: {
        token: {
          realm: this.tokens.realm,
          service: this.host,
          issuer: TOKEN_ISSUER,
          rootcertbundle: path.join(this.dir, 'token.crt'),
        },
      },
    };
    // JSON is YAML, which is what the registry reads.
    const configPath = path.join(this.dir, 'config.yml');
    writeFileSync(configPath, JSON.stringify(config, null, 2));
    const child = spawn(REGISTRY_BINARY, ['serve', configPath], {
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    this.child = child;
    child.stderr!.on('data', (chunk) => {
      this.stderr = (this.stderr + chunk).slice(-8000);
    });
    const exited = new Promise<never>((_, reject) =>
      child.once('exit', (code) =>
        reject(new Error(`docker-registry exited with code ${code}: ${this.stderr}`)),
      ),
    );
    await Promise.race([waitForPort(internalPort), exited]);
    return this;
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
    await Promise.all([this.tokens?.stop(), this.data?.stop()]);
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }

  /** Recent registry log lines, for failing tests. */
  get log(): string {
    return this.stderr;
  }

  /** A bearer token with these grants, for fixtures and for checking what was pushed. */
  bearer(repository: string, actions = ['pull', 'push']): string {
    return this.tokens.accessToken('test-admin', [{ name: repository, actions }]);
  }

  /** GETs a registry path as a test administrator. */
  async get(
    repository: string,
    pathname: string,
    accept = 'application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.v2+json',
  ): Promise<Response> {
    return fetch(`${this.url}/v2/${repository}/${pathname}`, {
      headers: { authorization: `Bearer ${this.bearer(repository, ['pull'])}`, accept },
    });
  }

  /**
   * Pushes a small OCI image over the registry API as a test administrator (no docker, which
   * cannot reach a registry known only by a production name): one gzipped layer holding
   * `files` (path in the image → content), a linux/amd64 config, a manifest tagged `tag`.
   */
  async pushImage(repository: string, tag: string, files: Record<string, string>): Promise<void> {
    const root = mkdtempSync(path.join(tmpdir(), 'image-'));
    try {
      for (const [name, content] of Object.entries(files)) {
        mkdirSync(path.dirname(path.join(root, name)), { recursive: true });
        writeFileSync(path.join(root, name), content);
      }
      const tar = execFileSync('tar', [
        ...['--sort=name', '--owner=0', '--group=0', '--numeric-owner', '--mtime=@0'],
        ...['-C', root, '-cf', '-', ...Object.keys(files).map((name) => name.replace(/^\/+/, ''))],
      ]);
      const layer = gzipSync(tar);
      const config = Buffer.from(
        JSON.stringify({
          architecture: 'amd64',
          os: 'linux',
          config: { Cmd: ['/bin/sh'], WorkingDir: '/' },
          rootfs: { type: 'layers', diff_ids: [digestOf(tar)] },
          history: [{ created_by: 'Registry.pushImage' }],
        }),
      );
      const token = this.bearer(repository);
      for (const blob of [layer, config]) {
        const started = await fetch(`${this.url}/v2/${repository}/blobs/uploads/`, {
          method: 'POST',
          headers: { authorization: `Bearer ${token}` },
        });
        const upload = new URL(started.headers.get('location') ?? '', this.url);
        upload.searchParams.set('digest', digestOf(blob));
        const put = await fetch(upload, {
          method: 'PUT',
          headers: { authorization: `Bearer ${token}`, 'content-type': 'application/octet-stream' },
          body: blob,
        });
        if (put.status !== 201) throw new Error(`blob upload answered ${put.status}`);
      }
      const manifest = JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: {
          mediaType: 'application/vnd.oci.image.config.v1+json',
          digest: digestOf(config),
          size: config.length,
        },
        layers: [
          {
            mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
            digest: digestOf(layer),
            size: layer.length,
          },
        ],
      });
      const put = await fetch(`${this.url}/v2/${repository}/manifests/${tag}`, {
        method: 'PUT',
        headers: {
          authorization: `Bearer ${token}`,
          'content-type': 'application/vnd.oci.image.manifest.v1+json',
        },
        body: manifest,
      });
      if (put.status !== 201) throw new Error(`manifest upload answered ${put.status}`);
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  }
}

function digestOf(data: Buffer): string {
  return `sha256:${createHash('sha256').update(data).digest('hex')}`;
}

/** An RSA key and a self-signed certificate for it (the registry's rootcertbundle). */
function tokenSigningKey(dir: string): SigningKey {
  const keyPath = path.join(dir, 'token.key');
  const certPath = path.join(dir, 'token.crt');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=acr-token-double',
      '-keyout',
      keyPath,
      '-out',
      certPath,
    ],
    { stdio: 'ignore' },
  );
  const privateKey = createPrivateKey(readFileSync(keyPath));
  const publicKey = createPublicKey(privateKey);
  const kid = libtrustKeyId(publicKey);
  return {
    kid,
    privateKey,
    publicKey,
    jwk: { ...publicKey.export({ format: 'jwk' }), kid, alg: 'RS256', use: 'sig' },
  };
}
