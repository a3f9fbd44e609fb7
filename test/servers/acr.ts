import { createHash, createHmac, randomBytes, randomUUID, type KeyObject } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { json } from './github-oidc';
import { signJwt, verifyJwt, type SigningKey } from './jwt';
import { closeServer, listenOnLoopback } from '../support/ports';

/** The user name ACR expects with a refresh token as the password (docker login, basic auth). */
export const ACR_TOKEN_USER = '00000000-0000-0000-0000-000000000000';

export interface AcrTokenOptions {
  /** TLS for the token endpoints (ACR serves them on the registry's https host). */
  tls: { key: string; cert: string };
  /** The registry's `service` name, the audience of every access token. */
  service: string;
  /** The `iss` of the tokens; the registry's config names the same issuer. */
  issuer: string;
  /** The key the registry trusts (its rootcertbundle holds the matching certificate). */
  signingKey: SigningKey;
  /** The tenant whose Entra tokens may be exchanged. */
  tenantId: string;
  /** Entra's signing keys, to verify the access tokens presented to /oauth2/exchange. */
  entraKeys: () => Array<Record<string, unknown>>;
  /** Plain user names and passwords, like ACR's admin user or a scope-map token. */
  users?: Record<string, string>;
  /** Which actions an identity (Entra object id or user name) may take on a repository. */
  grant?: (identity: string, repository: string, requested: string[]) => string[];
  accessTokenLifetimeSeconds?: number;
}

/** The registry's login server in front of the real registry: where and how it listens. */
export interface AcrLoginOptions extends AcrTokenOptions {
  /** The Distribution registry behind this login server (plain http on loopback). */
  upstream: URL;
  /** Where blob reads are redirected, as ACR sends them to its data endpoint or storage. */
  data: AcrDataEndpoint;
  /** The loopback port to listen on: the registry's public port, named in its config. */
  port: number;
}

/** What the double was asked, for tests that check the protocol the client followed. */
export interface AcrRequest {
  endpoint: 'exchange' | 'token';
  method: string;
  grantType: string;
  scope: string;
}

/**
 * A stand-in for ACR's login server (`<registry>.azurecr.io`) in front of the real Distribution
 * registry. Everything under /v2/ is relayed to the registry, except that a blob GET or HEAD
 * the caller may read is answered, as ACR answers it, with a 307 to another host (the data
 * endpoint) carrying a signed URL; that host refuses a request that also carries an
 * Authorization header. The token service lives on the same host, as ACR's does
 * (ACR's "AAD OAuth2 flow"):
 * - `POST /oauth2/exchange` with `grant_type=access_token&service=&tenant=&access_token=`
 *   verifies the Entra token (signature, audience https://containerregistry.azure.net, tenant,
 *   lifetime) and answers `{"refresh_token": ...}`;
 * - `POST /oauth2/token` with `grant_type=refresh_token` (or `password`), `service`, `scope`
 *   answers `{"access_token": ...}`;
 * - `GET /oauth2/token?service=&scope=` with basic auth (user 00000000-... and a refresh token as
 *   the password, or a plain user) answers `{"token": ..., "access_token": ...}`: what docker does
 *   after `docker login`.
 * Access tokens are the JWTs Distribution's token auth verifies: RS256, `kid` the libtrust
 * fingerprint of a key in the registry's rootcertbundle, `aud` the service, `access` the grants.
 */
export class AcrLoginServer {
  readonly requests: AcrRequest[] = [];
  /** Refresh and access tokens issued, so tests can check none of them reached a log. */
  readonly issuedSecrets: string[] = [];
  /** Blob reads answered with a redirect to the data endpoint. */
  redirects = 0;
  private server?: https.Server;
  private readonly upstreamAgent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  /** Answers the next N POSTs (exchange or token) with 503, for retry tests. */
  failNext = 0;

  constructor(readonly options: AcrLoginOptions) {}

  /** The registry's own origin: where clients, the realm and docker find it. */
  get origin(): string {
    return `https://${this.options.service}`;
  }

  /** The realm the registry names in its WWW-Authenticate challenge. */
  get realm(): string {
    return `${this.origin}/oauth2/token`;
  }

  async start(): Promise<this> {
    this.server = https.createServer(this.options.tls, (req, res) => {
      const path = (req.url ?? '/').split('?')[0];
      if (path.startsWith('/oauth2/')) {
        let body = '';
        req.setEncoding('utf8');
        req.on('data', (chunk: string) => (body += chunk));
        req.on('end', () => this.handle(req, body, res));
        return;
      }
      void this.registry(req, res);
    });
    await listenOnLoopback(this.server, '127.0.0.1', this.options.port);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
    this.upstreamAgent.destroy();
  }

  /**
   * Relays a registry request. A blob GET or HEAD is first asked of the registry as a HEAD with
   * the caller's credentials: when the caller may read it, the answer is a 307 to the data
   * endpoint; otherwise the registry's own answer (401 with its challenge, 404) is relayed.
   */
  private async registry(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const blob = /^\/v2\/(.+)\/blobs\/(sha256:[a-f0-9]{64})$/.exec((req.url ?? '').split('?')[0]);
    if (blob && (req.method === 'GET' || req.method === 'HEAD')) {
      const status = await this.upstreamStatus('HEAD', req.url!, req.headers.authorization);
      if (status === 200) {
        this.redirects++;
        const location = this.options.data.sign(blob[1], blob[2]);
        res.writeHead(307, { location, 'content-length': '0' });
        res.end();
        return;
      }
    }
    this.relay(req, res);
  }

  private upstreamStatus(method: string, path: string, authorization?: string): Promise<number> {
    return new Promise((resolve) => {
      const request = http.request(
        new URL(path, this.options.upstream),
        {
          method,
          agent: this.upstreamAgent,
          headers: authorization ? { authorization } : {},
        },
        (answer) => {
          answer.resume();
          resolve(answer.statusCode ?? 0);
        },
      );
      request.on('error', () => resolve(0));
      request.end();
    });
  }

  private relay(req: http.IncomingMessage, res: http.ServerResponse): void {
    const headers = { ...req.headers, host: this.options.service };
    const upstream = http.request(
      new URL(req.url ?? '/', this.options.upstream),
      { method: req.method, headers, agent: this.upstreamAgent },
      (answer) => {
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    req.on('close', () => {
      if (!req.complete) upstream.destroy();
    });
    req.pipe(upstream);
  }

  /** Signs an access token directly, for test fixtures (pushing a base image). */
  accessToken(identity: string, access: Array<{ name: string; actions: string[] }>): string {
    return this.sign(
      identity,
      access.map((item) => ({ type: 'repository', ...item })),
    );
  }

  private handle(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.origin);
    if (this.failNext > 0 && req.method === 'POST') {
      this.failNext--;
      res.writeHead(503, { 'retry-after': '0', 'content-length': '0' });
      return void res.end();
    }
    if (url.pathname === '/oauth2/exchange' && req.method === 'POST') {
      return this.exchange(new URLSearchParams(body), res);
    }
    if (url.pathname === '/oauth2/token' && req.method === 'POST') {
      return this.tokenByForm(new URLSearchParams(body), res);
    }
    if (url.pathname === '/oauth2/token' && req.method === 'GET') {
      return this.tokenByBasic(req, url.searchParams, res);
    }
    json(res, 404, { errors: [{ code: 'NOT_FOUND', message: 'not found' }] });
  }

  private exchange(form: URLSearchParams, res: http.ServerResponse): void {
    this.requests.push({
      endpoint: 'exchange',
      method: 'POST',
      grantType: form.get('grant_type') ?? '',
      scope: '',
    });
    if (form.get('grant_type') !== 'access_token') {
      return unauthorized(res, 'grant_type must be access_token');
    }
    if (form.get('service') !== this.options.service) {
      return unauthorized(res, `service '${form.get('service')}' is not this registry`);
    }
    if (form.get('tenant') !== this.options.tenantId) {
      return unauthorized(res, `tenant '${form.get('tenant')}' is not this registry's tenant`);
    }
    const verified = verifyJwt(form.get('access_token') ?? '', this.options.entraKeys());
    if ('error' in verified) return unauthorized(res, `invalid access token: ${verified.error}`);
    const claims = verified.claims;
    if (claims.aud !== 'https://containerregistry.azure.net') {
      return unauthorized(res, `access token audience '${claims.aud}' is not ACR`);
    }
    if (claims.tid !== this.options.tenantId) return unauthorized(res, 'wrong tenant');
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) {
      return unauthorized(res, 'access token expired');
    }
    const now = Math.floor(Date.now() / 1000);
    const refreshToken = signJwt(
      {
        jti: randomUUID(),
        sub: String(claims.oid ?? claims.appid),
        nbf: now - 5,
        iat: now,
        exp: now + 3 * 3600,
        iss: this.options.issuer,
        aud: this.options.service,
        version: '1.0',
        grant_type: 'refresh_token',
        tenant: this.options.tenantId,
        permissions: { actions: ['read', 'write'] },
        roles: [],
      },
      this.options.signingKey,
    );
    this.issuedSecrets.push(refreshToken);
    json(res, 200, { refresh_token: refreshToken });
  }

  private tokenByForm(form: URLSearchParams, res: http.ServerResponse): void {
    const grantType = form.get('grant_type') ?? '';
    const scope = form.get('scope') ?? '';
    this.requests.push({ endpoint: 'token', method: 'POST', grantType, scope });
    if (form.get('service') !== this.options.service) {
      return unauthorized(res, `service '${form.get('service')}' is not this registry`);
    }
    let identity: string | undefined;
    if (grantType === 'refresh_token') {
      identity = this.identityOfRefreshToken(form.get('refresh_token') ?? '');
    } else if (grantType === 'password') {
      identity = this.identityOfUser(form.get('username') ?? '', form.get('password') ?? '');
    } else {
      return unauthorized(res, `unsupported grant_type '${grantType}'`);
    }
    if (!identity) return unauthorized(res, 'invalid credentials');
    const token = this.sign(identity, this.grants(identity, scope.split(' ')));
    this.issuedSecrets.push(token);
    json(res, 200, { access_token: token });
  }

  private tokenByBasic(
    req: http.IncomingMessage,
    query: URLSearchParams,
    res: http.ServerResponse,
  ): void {
    const scopes = query.getAll('scope');
    this.requests.push({
      endpoint: 'token',
      method: 'GET',
      grantType: 'basic',
      scope: scopes.join(' '),
    });
    const header = req.headers.authorization ?? '';
    if (!header.startsWith('Basic ')) return unauthorized(res, 'basic credentials required');
    const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
    const colon = decoded.indexOf(':');
    const user = decoded.slice(0, colon);
    const password = decoded.slice(colon + 1);
    const identity =
      user === ACR_TOKEN_USER
        ? this.identityOfRefreshToken(password)
        : this.identityOfUser(user, password);
    if (!identity) return unauthorized(res, 'invalid credentials');
    const token = this.sign(identity, this.grants(identity, scopes));
    json(res, 200, { token, access_token: token });
  }

  private identityOfRefreshToken(token: string): string | undefined {
    const verified = verifyJwt(token, [this.options.signingKey.jwk]);
    if ('error' in verified) return undefined;
    const { claims } = verified;
    if (claims.grant_type !== 'refresh_token' || claims.aud !== this.options.service) {
      return undefined;
    }
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) return undefined;
    return String(claims.sub);
  }

  private identityOfUser(user: string, password: string): string | undefined {
    const expected = this.options.users?.[user];
    return expected !== undefined && expected === password ? user : undefined;
  }

  /** Parses `repository:<name>:<actions>` scopes into what the identity is allowed. */
  private grants(identity: string, scopes: string[]): Array<Record<string, unknown>> {
    const access: Array<Record<string, unknown>> = [];
    for (const scope of scopes.filter(Boolean)) {
      const match = /^repository:(.+):([a-z*,]+)$/.exec(scope);
      if (!match) continue;
      const requested = match[2].split(',');
      const actions = this.options.grant
        ? this.options.grant(identity, match[1], requested)
        : requested;
      if (actions.length > 0) access.push({ type: 'repository', name: match[1], actions });
    }
    return access;
  }

  private sign(identity: string, access: Array<Record<string, unknown>>): string {
    const now = Math.floor(Date.now() / 1000);
    return signJwt(
      {
        jti: randomUUID(),
        sub: identity,
        nbf: now - 5,
        iat: now,
        exp: now + (this.options.accessTokenLifetimeSeconds ?? 1200),
        iss: this.options.issuer,
        aud: this.options.service,
        version: '1.0',
        access,
      },
      this.options.signingKey,
    );
  }
}

/** What the data endpoint was asked, for tests that check what reached it. */
export interface DataRequest {
  method: string;
  /** Whether the request carried an Authorization header (it is refused when it does). */
  authorization: boolean;
  status: number;
}

/**
 * The host ACR redirects blob reads to (its dedicated data endpoint, or the storage account
 * behind it). URLs are signed and short-lived, as a storage SAS is: `sig` is an HMAC over the
 * repository, digest and expiry. Like Azure Storage given a SAS, it refuses a request that also
 * carries an Authorization header, so a client that forwards the registry token across the
 * redirect fails here as it would against ACR. It reads the bytes from the registry itself.
 */
export class AcrDataEndpoint {
  readonly requests: DataRequest[] = [];
  private server?: https.Server;
  private port = 0;
  private readonly key = randomBytes(32);
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
  /** Lifetime of the signed URLs. */
  urlLifetimeSeconds = 600;

  constructor(
    private readonly options: {
      tls: { key: string; cert: string };
      /** A loopback address other than the registry's: another host, as far as clients know. */
      address: string;
      /** The registry to read blobs from, and a token that may pull from a repository. */
      upstream: URL;
      pullToken: (repository: string) => string;
      /**
       * The host name clients use instead of the address, e.g. myacr.eastus.data.azurecr.io in
       * the proxy tests, where the proxy routes it (port 443) to this endpoint.
       */
      hostName?: string;
    },
  ) {}

  /** The origin of the signed URLs: the public name when there is one. */
  get origin(): string {
    return this.options.hostName ? `https://${this.options.hostName}` : this.localOrigin;
  }

  /** Where the endpoint listens. */
  get localOrigin(): string {
    return `https://${this.options.address}:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = https.createServer(this.options.tls, (req, res) => void this.handle(req, res));
    this.port = await listenOnLoopback(this.server, this.options.address);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
    this.agent.destroy();
  }

  /** A URL that reads one blob of one repository until it expires. */
  sign(repository: string, digest: string): string {
    const expiry = new Date(Date.now() + this.urlLifetimeSeconds * 1000).toISOString();
    const hex = digest.slice('sha256:'.length);
    const url = new URL(
      `/docker/registry/v2/blobs/sha256/${hex.slice(0, 2)}/${hex}/data`,
      this.origin,
    );
    url.searchParams.set('r', repository);
    url.searchParams.set('se', expiry);
    url.searchParams.set('sp', 'r');
    url.searchParams.set('sig', this.signature(repository, digest, expiry));
    return url.toString();
  }

  private signature(repository: string, digest: string, expiry: string): string {
    return createHmac('sha256', this.key)
      .update(`${repository}\n${digest}\n${expiry}`)
      .digest('base64');
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const record = (status: number) =>
      this.requests.push({
        method: req.method ?? '',
        authorization: req.headers.authorization !== undefined,
        status,
      });
    const url = new URL(req.url ?? '/', this.origin);
    const match = /^\/docker\/registry\/v2\/blobs\/sha256\/[a-f0-9]{2}\/([a-f0-9]{64})\/data$/.exec(
      url.pathname,
    );
    if (req.headers.authorization !== undefined) {
      record(400);
      return storageError(
        res,
        400,
        'InvalidAuthenticationInfo',
        'Authentication information is not given in the correct format: a request may be ' +
          'authorized by the signature in its URL or by an Authorization header, not both.',
      );
    }
    const repository = url.searchParams.get('r') ?? '';
    const expiry = url.searchParams.get('se') ?? '';
    const digest = match ? `sha256:${match[1]}` : '';
    const expected = match ? this.signature(repository, digest, expiry) : '';
    if (!match || url.searchParams.get('sig') !== expected) {
      record(403);
      return storageError(res, 403, 'AuthenticationFailed', 'Signature did not match.');
    }
    if (Date.parse(expiry) < Date.now()) {
      record(403);
      return storageError(res, 403, 'AuthenticationFailed', 'Signed expiry time has passed.');
    }
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      record(405);
      return storageError(res, 405, 'UnsupportedHttpVerb', 'The resource does not support it.');
    }
    const headers: Record<string, string> = {
      authorization: `Bearer ${this.options.pullToken(repository)}`,
    };
    if (req.headers.range) headers.range = req.headers.range;
    const upstream = http.request(
      new URL(`/v2/${repository}/blobs/${digest}`, this.options.upstream),
      { method: req.method, headers, agent: this.agent },
      (answer) => {
        const status = answer.statusCode ?? 502;
        record(status);
        if (status !== 200 && status !== 206) {
          answer.resume();
          return storageError(res, status === 404 ? 404 : 502, 'BlobNotFound', 'No such blob.');
        }
        const relayed: Record<string, string> = { 'content-type': 'application/octet-stream' };
        for (const name of ['content-length', 'content-range', 'etag', 'accept-ranges']) {
          const value = answer.headers[name];
          if (typeof value === 'string') relayed[name] = value;
        }
        res.writeHead(status, relayed);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.destroy());
    upstream.end();
  }
}

/** An Azure Storage error answer: the code in x-ms-error-code and in the XML body. */
function storageError(
  res: http.ServerResponse,
  status: number,
  code: string,
  message: string,
): void {
  const body = `<?xml version="1.0" encoding="utf-8"?><Error><Code>${code}</Code><Message>${message}</Message></Error>`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': String(Buffer.byteLength(body)),
    'x-ms-error-code': code,
  });
  res.end(body);
}

function unauthorized(res: http.ServerResponse, message: string): void {
  json(res, 401, { errors: [{ code: 'UNAUTHORIZED', message }] });
}

/**
 * The key id Distribution's token auth matches a JWT's `kid` against: libtrust's fingerprint,
 * base32 of the first 240 bits of SHA-256 over the DER public key, in groups of four.
 */
export function libtrustKeyId(publicKey: KeyObject): string {
  const der = publicKey.export({ format: 'der', type: 'spki' });
  const hash = createHash('sha256').update(der).digest().subarray(0, 30);
  const encoded = base32(hash);
  return encoded.match(/.{4}/g)!.join(':');
}

function base32(data: Buffer): string {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  let output = '';
  for (const byte of data) {
    value = (value << 8) | byte;
    bits += 8;
    while (bits >= 5) {
      output += alphabet[(value >>> (bits - 5)) & 31];
      bits -= 5;
    }
  }
  if (bits > 0) output += alphabet[(value << (5 - bits)) & 31];
  return output;
}
