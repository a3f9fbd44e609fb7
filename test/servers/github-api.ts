import {
  createPublicKey,
  generateKeyPairSync,
  randomBytes,
  verify,
  type KeyObject,
} from 'node:crypto';
import * as http from 'node:http';
import { json } from './github-oidc';
import { closeServer, listenOnLoopback } from '../support/ports';

/**
 * A stand-in for the parts of the GitHub REST API the model-upload dispatcher calls, following
 * GitHub's documented behaviour:
 *
 * - `POST /app/installations/{id}/access_tokens` with `Authorization: Bearer <app JWT>`: the JWT
 *   is RS256, signed with the app's private key, `iss` the app id, `exp` at most 10 minutes
 *   after `iat`. Answers 201 `{token, expires_at, permissions, repository_selection}`; a body's
 *   `repositories` and `permissions` narrow the token (422 for a repository the installation
 *   does not cover).
 * - `POST /repos/{owner}/{repo}/dispatches` with `Authorization: Bearer|token <token>` and
 *   `{event_type, client_payload}`: 204; 401 for an unknown or expired token; 404 for a
 *   repository the token cannot see; 403 without Contents: write; 422 for an event_type over
 *   100 characters or a client_payload with more than 10 top-level properties.
 *
 * Every answer carries the x-ratelimit-* headers. `failNext` queues scripted answers (5xx,
 * secondary rate limits with Retry-After, primary limits with x-ratelimit-reset) for a path.
 */
export interface GithubApp {
  appId: string;
  installationId: string;
  /** The PEM the app's owner downloads from GitHub (PKCS#1, like GitHub's). */
  privateKeyPem: string;
  publicKey: KeyObject;
  /** Repositories (owner/repo) the installation was granted. */
  repositories: string[];
}

export interface RecordedDispatch {
  repository: string;
  token: string;
  eventType: string;
  clientPayload: Record<string, unknown>;
  headers: http.IncomingHttpHeaders;
}

export interface ScriptedAnswer {
  /** Closes the connection without answering (a dropped connection) instead. */
  drop?: boolean;
  status: number;
  headers?: Record<string, string>;
  body?: unknown;
}

interface IssuedToken {
  repositories: string[];
  permissions: Record<string, string>;
  expiresAt: number;
}

export class GithubApiServer {
  readonly apps: GithubApp[] = [];
  readonly dispatches: RecordedDispatch[] = [];
  /** Every request: method, path and status answered, in order. */
  readonly requests: Array<{ method: string; path: string; status: number }> = [];
  readonly issuedTokens: string[] = [];
  private readonly tokens = new Map<string, IssuedToken>();
  private readonly scripted: Array<{ path: RegExp; answer: ScriptedAnswer }> = [];
  private server?: http.Server;
  private port = 0;
  /** Lifetime of installation tokens (GitHub's is one hour). */
  tokenLifetimeMs = 60 * 60_000;

  get url(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Registers a GitHub App installed on `repositories`, with a fresh RSA key. */
  addApp(repositories: string[], appId = String(100000 + this.apps.length)): GithubApp {
    const { privateKey, publicKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
    const app: GithubApp = {
      appId,
      installationId: String(5000000 + this.apps.length),
      privateKeyPem: privateKey.export({ type: 'pkcs1', format: 'pem' }).toString(),
      publicKey,
      repositories,
    };
    this.apps.push(app);
    return app;
  }

  /** A fine-grained personal access token with the given permissions on `repositories`. */
  addPersonalToken(
    repositories: string[],
    permissions = { contents: 'write', metadata: 'read' },
  ): string {
    const token = `github_pat_${randomBytes(30).toString('base64url')}`;
    this.tokens.set(token, { repositories, permissions, expiresAt: Number.MAX_SAFE_INTEGER });
    return token;
  }

  /** Answers the next request whose path matches with `answer` instead of handling it. */
  failNext(path: RegExp, answer: ScriptedAnswer, times = 1): void {
    for (let i = 0; i < times; i++) this.scripted.push({ path, answer });
  }

  /** Makes an issued token unusable, as revoking or its expiry would. */
  revoke(token: string): void {
    this.tokens.delete(token);
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        json(res, 500, { message: String(error) });
      });
    });
    this.port = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const text = Buffer.concat(chunks).toString('utf8');
    const path = new URL(req.url ?? '/', 'http://localhost').pathname;
    const answer = (status: number, body?: unknown, headers: Record<string, string> = {}) => {
      this.requests.push({ method: req.method ?? '', path, status });
      const reset = Math.floor(Date.now() / 1000) + 3600;
      res.setHeader('x-ratelimit-limit', '5000');
      res.setHeader('x-ratelimit-remaining', '4999');
      res.setHeader('x-ratelimit-reset', String(reset));
      res.setHeader('x-ratelimit-resource', 'core');
      for (const [name, value] of Object.entries(headers)) res.setHeader(name, value);
      if (body === undefined) {
        res.writeHead(status);
        res.end();
      } else {
        json(res, status, body);
      }
    };

    const index = this.scripted.findIndex((entry) => entry.path.test(path));
    if (index >= 0) {
      const [{ answer: scripted }] = this.scripted.splice(index, 1);
      if (scripted.drop) {
        this.requests.push({ method: req.method ?? '', path, status: 0 });
        req.socket.destroy();
        return;
      }
      return answer(scripted.status, scripted.body, scripted.headers);
    }
    if (!req.headers['user-agent']) {
      return answer(403, {
        message:
          'Request forbidden by administrative rules. Please make sure your request has a User-Agent header',
      });
    }
    let body: Record<string, unknown> = {};
    if (text) {
      try {
        body = JSON.parse(text);
      } catch {
        return answer(400, { message: 'Problems parsing JSON' });
      }
    }

    const tokenRoute = /^\/app\/installations\/(\d+)\/access_tokens$/.exec(path);
    if (req.method === 'POST' && tokenRoute) {
      const app = this.apps.find((candidate) => candidate.installationId === tokenRoute[1]);
      const jwtError = this.checkAppJwt(req.headers.authorization, app);
      if (jwtError) return answer(401, { message: jwtError });
      if (!app) return answer(404, { message: 'Not Found' });
      const wanted = Array.isArray(body.repositories) ? (body.repositories as string[]) : undefined;
      const granted = wanted
        ? wanted.map((name) => app.repositories.find((full) => full.split('/')[1] === name))
        : app.repositories;
      if (granted.some((full) => !full)) {
        return answer(422, {
          message:
            'There is at least one repository that does not exist or is not accessible to the parent installation.',
        });
      }
      const permissions = (body.permissions as Record<string, string>) ?? {
        contents: 'write',
        metadata: 'read',
      };
      const token = `ghs_${randomBytes(27).toString('base64url')}`;
      const expiresAt = Date.now() + this.tokenLifetimeMs;
      this.tokens.set(token, { repositories: granted as string[], permissions, expiresAt });
      this.issuedTokens.push(token);
      return answer(201, {
        token,
        expires_at: new Date(expiresAt).toISOString().replace(/\.\d{3}Z$/, 'Z'),
        permissions,
        repository_selection: wanted ? 'selected' : 'all',
      });
    }

    const dispatchRoute = /^\/repos\/([^/]+)\/([^/]+)\/dispatches$/.exec(path);
    if (req.method === 'POST' && dispatchRoute) {
      const repository = `${dispatchRoute[1]}/${dispatchRoute[2]}`;
      const presented = /^(?:Bearer|token) (.+)$/i.exec(req.headers.authorization ?? '')?.[1];
      const grant = presented ? this.tokens.get(presented) : undefined;
      if (!presented || !grant || grant.expiresAt <= Date.now()) {
        return answer(401, { message: 'Bad credentials' });
      }
      if (!grant.repositories.includes(repository)) return answer(404, { message: 'Not Found' });
      if (grant.permissions.contents !== 'write') {
        return answer(403, { message: 'Resource not accessible by integration' });
      }
      const eventType = body.event_type;
      if (typeof eventType !== 'string' || !eventType || eventType.length > 100) {
        return answer(422, { message: 'Invalid request. event_type must be 1 to 100 characters.' });
      }
      const clientPayload = (body.client_payload ?? {}) as Record<string, unknown>;
      if (
        Object.keys(clientPayload).length > 10 ||
        JSON.stringify(clientPayload).length >= 64 * 1024
      ) {
        return answer(422, {
          message: 'Invalid request. client_payload has too many properties or is too large.',
        });
      }
      this.dispatches.push({
        repository,
        token: presented,
        eventType,
        clientPayload,
        headers: req.headers,
      });
      return answer(204);
    }
    return answer(404, { message: 'Not Found' });
  }

  /** GitHub's checks of an app JWT; returns why it is refused, or undefined. */
  private checkAppJwt(
    authorization: string | undefined,
    app: GithubApp | undefined,
  ): string | undefined {
    // The scheme is case-insensitive (RFC 7235): @octokit/auth-app sends `bearer`.
    const jwt = /^Bearer (.+)$/i.exec(authorization ?? '')?.[1];
    const parts = jwt?.split('.') ?? [];
    if (parts.length !== 3) return 'A JSON web token could not be decoded';
    let header: { alg?: string };
    let claims: { iat?: number; exp?: number; iss?: unknown };
    try {
      header = JSON.parse(Buffer.from(parts[0], 'base64url').toString('utf8'));
      claims = JSON.parse(Buffer.from(parts[1], 'base64url').toString('utf8'));
    } catch {
      return 'A JSON web token could not be decoded';
    }
    if (header.alg !== 'RS256') return `'alg' must be RS256`;
    const issuer = this.apps.find((candidate) => String(claims.iss) === candidate.appId);
    if (!issuer) return `'Issuer' claim ('iss') must be an Integer`;
    const valid = verify(
      'sha256',
      Buffer.from(`${parts[0]}.${parts[1]}`),
      createPublicKey(issuer.publicKey.export({ type: 'spki', format: 'pem' })),
      Buffer.from(parts[2], 'base64url'),
    );
    if (!valid) return 'A JSON web token could not be decoded';
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.iat !== 'number' || typeof claims.exp !== 'number')
      return 'Missing iat or exp';
    if (claims.iat > now + 60)
      return "'Issued at' claim ('iat') must be an Integer representing a time in the past";
    if (claims.exp <= now)
      return "'Expiration time' claim ('exp') must be a numeric value representing the future time";
    if (claims.exp - claims.iat > 600)
      return "'Expiration time' claim ('exp') is too far in the future";
    if (app && issuer !== app)
      return 'Integration must generate a JSON web token for its own installation';
    return undefined;
  }
}
