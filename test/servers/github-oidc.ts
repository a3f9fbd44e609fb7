import { randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import { newSigningKey, signJwt, type SigningKey } from './jwt';
import { closeServer, listenOnLoopback } from '../support/ports';

/**
 * A stand-in for GitHub's OIDC token endpoint, the one a job reaches through
 * ACTIONS_ID_TOKEN_REQUEST_URL: `GET <url>&audience=<aud>` with
 * `Authorization: Bearer <ACTIONS_ID_TOKEN_REQUEST_TOKEN>` answers `{"value": "<JWT>"}`.
 * Tokens are RS256 JWTs with GitHub's claim set, signed by a key published as a JWKS.
 */
export interface GithubOidcOptions {
  /** The `iss` claim; GitHub's own by default. */
  issuer?: string;
  repository?: string;
  ref?: string;
  /** Overrides the `sub` claim (e.g. an environment subject). */
  subject?: string;
  /** Token lifetime; GitHub's are short, which is why assertions must be fetched fresh. */
  lifetimeSeconds?: number;
  /**
   * The host of ACTIONS_ID_TOKEN_REQUEST_URL and the address it resolves to, where the endpoint
   * listens: the proxy tests use the machine's own name, which NO_PROXY must exempt.
   * 127.0.0.1 otherwise.
   */
  hostName?: string;
  listenAddress?: string;
}

export class GithubOidcServer {
  readonly key: SigningKey = newSigningKey();
  readonly requestToken = randomBytes(24).toString('hex');
  readonly issuedAudiences: string[] = [];
  readonly issuedTokens: string[] = [];
  private server?: http.Server;
  private port = 0;

  constructor(readonly options: GithubOidcOptions = {}) {}

  get issuer(): string {
    return this.options.issuer ?? 'https://token.actions.githubusercontent.com';
  }

  get subject(): string {
    return (
      this.options.subject ??
      `repo:${this.options.repository ?? 'octo-org/ai-app'}:ref:${this.options.ref ?? 'refs/heads/main'}`
    );
  }

  /** The value of ACTIONS_ID_TOKEN_REQUEST_URL (the toolkit appends `&audience=`). */
  get requestUrl(): string {
    return `http://${this.options.hostName ?? '127.0.0.1'}:${this.port}/_apis/actionstoken?api-version=2.0`;
  }

  get jwks(): Array<Record<string, unknown>> {
    return [this.key.jwk];
  }

  /** The environment a job with `permissions: id-token: write` gets. */
  jobEnv(): Record<string, string> {
    return {
      ACTIONS_ID_TOKEN_REQUEST_URL: this.requestUrl,
      ACTIONS_ID_TOKEN_REQUEST_TOKEN: this.requestToken,
    };
  }

  async start(): Promise<this> {
    this.server = http.createServer((req, res) => this.handle(req, res));
    this.port = await listenOnLoopback(this.server, this.options.listenAddress);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'http://localhost');
    if (req.method === 'GET' && url.pathname === '/.well-known/jwks') {
      return json(res, 200, { keys: this.jwks });
    }
    if (req.method !== 'GET' || url.pathname !== '/_apis/actionstoken') {
      return json(res, 404, { message: 'not found' });
    }
    if (req.headers.authorization !== `Bearer ${this.requestToken}`) {
      return json(res, 401, { message: 'Bad credentials' });
    }
    const audience = url.searchParams.get('audience') ?? `https://github.com/${this.repository}`;
    const now = Math.floor(Date.now() / 1000);
    const token = signJwt(
      {
        jti: randomUUID(),
        iss: this.issuer,
        aud: audience,
        sub: this.subject,
        repository: this.repository,
        repository_owner: this.repository.split('/')[0],
        ref: this.options.ref ?? 'refs/heads/main',
        sha: '0123456789abcdef0123456789abcdef01234567',
        workflow: 'ai-app-cicd',
        event_name: 'push',
        run_id: '1',
        nbf: now - 5,
        iat: now,
        exp: now + (this.options.lifetimeSeconds ?? 300),
      },
      this.key,
    );
    this.issuedAudiences.push(audience);
    this.issuedTokens.push(token);
    json(res, 200, { count: 1, value: token });
  }

  private get repository(): string {
    return this.options.repository ?? 'octo-org/ai-app';
  }
}

export function json(res: http.ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
  });
  res.end(text);
}
