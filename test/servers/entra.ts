import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { json } from './github-oidc';
import { newSigningKey, signJwt, verifyJwt, type SigningKey } from './jwt';
import { closeServer, listenOnLoopback } from '../support/ports';

/** A federated identity credential of an app registration: which tokens it trusts. */
export interface FederatedCredential {
  issuer: string;
  subject: string;
  audience: string;
}

export interface EntraApp {
  clientId: string;
  federatedCredentials: FederatedCredential[];
  /** A client secret the app may sign in with instead (how first-party services such as Event Grid appear). */
  clientSecret?: string;
  /** App roles granted to this app, by the resource (client id or App ID URI) that defines them: the token's `roles`. */
  appRoles?: Record<string, string[]>;
}

export interface EntraOptions {
  tenantId: string;
  apps: EntraApp[];
  /** Where the issuer's signing keys come from (GitHub's JWKS). */
  trustedKeys: () => Array<Record<string, unknown>>;
  /** TLS key and certificate; Entra authorities are https only. */
  tls: { key: string; cert: string };
  /** Access token lifetime. */
  tokenLifetimeSeconds?: number;
}

/**
 * A stand-in for the Entra ID v2.0 token endpoint, for the client-credentials grant with a
 * federated client assertion (workload identity federation): it serves the tenant's OpenID
 * metadata, verifies the GitHub token's signature, lifetime, issuer, subject and audience
 * against the app's federated credentials, and issues v1-shaped access tokens whose `aud` is
 * the requested resource, answering errors with Entra's AADSTS codes.
 */
export class EntraServer {
  /** The key tokens are signed with now; `rotateSigningKey` replaces it, as Entra's rollover does. */
  key = newSigningKey();
  private retiredKeys: SigningKey[] = [];
  readonly tokenRequests: Array<{ clientId: string; scope: string }> = [];
  /** Access tokens issued, so tests can check none of them reached a log. */
  readonly issuedTokens: string[] = [];
  private server?: https.Server;
  private port = 0;

  constructor(readonly options: EntraOptions) {}

  get authorityHost(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = https.createServer(this.options.tls, (req, res) => this.handle(req, res));
    this.port = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  /**
   * Entra's key rollover: a new key signs from now on; the old one stays published. A client
   * that cached the key set sees tokens with a key id it does not know until it reads it again.
   */
  rotateSigningKey(): void {
    this.retiredKeys.unshift(this.key);
    this.key = newSigningKey();
  }

  /** The published key set (discovery/v2.0/keys). */
  get jwks(): Array<Record<string, unknown>> {
    return [this.key, ...this.retiredKeys].map((key) => key.jwk);
  }

  /** How many times the key set was read. */
  keyReads = 0;

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', this.authorityHost);
    const match =
      /^\/([^/]+)\/(v2\.0\/\.well-known\/openid-configuration|oauth2\/v2\.0\/token|discovery\/v2\.0\/keys)$/.exec(
        url.pathname,
      );
    if (!match) return json(res, 404, { error: 'not_found' });
    const [, tenant, endpoint] = match;
    if (tenant !== this.options.tenantId) {
      return aadError(res, 400, 'invalid_tenant', 90002, `Tenant '${tenant}' not found.`);
    }
    // Entra names itself by the host it was asked on: login.microsoftonline.com when reached by
    // its production name (through a proxy), 127.0.0.1:<port> when reached directly.
    const origin = req.headers.host ? `https://${req.headers.host}` : this.authorityHost;
    const base = `${origin}/${tenant}`;
    if (endpoint.startsWith('v2.0')) {
      return json(res, 200, {
        issuer: `${base}/v2.0`,
        token_endpoint: `${base}/oauth2/v2.0/token`,
        authorization_endpoint: `${base}/oauth2/v2.0/authorize`,
        end_session_endpoint: `${base}/oauth2/v2.0/logout`,
        jwks_uri: `${base}/discovery/v2.0/keys`,
        token_endpoint_auth_methods_supported: ['private_key_jwt', 'client_secret_post'],
        response_types_supported: ['code', 'id_token', 'token'],
        tenant_region_scope: null,
      });
    }
    if (endpoint.startsWith('discovery')) {
      this.keyReads++;
      return json(res, 200, { keys: this.jwks });
    }
    if (req.method !== 'POST') return json(res, 405, { error: 'method_not_allowed' });
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => this.issue(new URLSearchParams(body), res));
  }

  private issue(form: URLSearchParams, res: http.ServerResponse): void {
    const clientId = form.get('client_id') ?? '';
    const scope = (form.get('scope') ?? '')
      .split(' ')
      .filter((item) => item && !['openid', 'profile', 'offline_access'].includes(item))[0];
    if (form.get('grant_type') !== 'client_credentials') {
      return aadError(
        res,
        400,
        'unsupported_grant_type',
        70003,
        'The app requested an unsupported grant type.',
      );
    }
    const app = this.options.apps.find((candidate) => candidate.clientId === clientId);
    if (!app) {
      return aadError(
        res,
        400,
        'unauthorized_client',
        700016,
        `Application with identifier '${clientId}' was not found in the directory '${this.options.tenantId}'.`,
      );
    }
    const now = Math.floor(Date.now() / 1000);
    const secret = form.get('client_secret');
    if (secret !== null) {
      if (!app.clientSecret || secret !== app.clientSecret) {
        return aadError(
          res,
          401,
          'invalid_client',
          7000215,
          'Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.',
        );
      }
    } else {
      if (
        form.get('client_assertion_type') !==
        'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
      ) {
        return aadError(
          res,
          401,
          'invalid_client',
          7000218,
          "The request body must contain 'client_assertion' or 'client_secret'.",
        );
      }
      const verified = verifyJwt(form.get('client_assertion') ?? '', this.options.trustedKeys());
      if ('error' in verified) {
        return aadError(
          res,
          401,
          'invalid_client',
          700027,
          `Client assertion failed signature validation: ${verified.error}.`,
        );
      }
      const claims = verified.claims;
      if (typeof claims.exp !== 'number' || claims.exp < now) {
        return aadError(
          res,
          400,
          'invalid_client',
          700024,
          'Client assertion is not within its valid time range.',
        );
      }
      const trusted = app.federatedCredentials.some(
        (credential) =>
          credential.issuer === claims.iss &&
          credential.subject === claims.sub &&
          credential.audience === claims.aud,
      );
      if (!trusted) {
        return aadError(
          res,
          400,
          'invalid_client',
          70021,
          `No matching federated identity record found for presented assertion. Assertion Issuer: '${claims.iss}'. ` +
            `Assertion Subject: '${claims.sub}'. Assertion Audience: '${claims.aud}'.`,
        );
      }
    }
    if (!scope || !scope.endsWith('/.default')) {
      return aadError(
        res,
        400,
        'invalid_scope',
        1002012,
        `The provided value for scope ${scope} is not valid.`,
      );
    }
    const resource = scope.slice(0, -'/.default'.length);
    const roles = app.appRoles?.[resource];
    const lifetime = this.options.tokenLifetimeSeconds ?? 3600;
    this.tokenRequests.push({ clientId, scope });
    const accessToken = signJwt(
      {
        aud: resource,
        iss: `https://sts.windows.net/${this.options.tenantId}/`,
        iat: now,
        nbf: now - 5,
        exp: now + lifetime,
        appid: clientId,
        appidacr: '2',
        idtyp: 'app',
        oid: randomUUID(),
        sub: randomUUID(),
        tid: this.options.tenantId,
        ver: '1.0',
        ...(roles ? { roles } : {}),
      },
      this.key,
    );
    this.issuedTokens.push(accessToken);
    json(res, 200, {
      token_type: 'Bearer',
      expires_in: lifetime,
      ext_expires_in: lifetime,
      access_token: accessToken,
    });
  }
}

function aadError(
  res: http.ServerResponse,
  status: number,
  error: string,
  code: number,
  description: string,
): void {
  json(res, status, {
    error,
    error_description: `AADSTS${code}: ${description} Trace ID: ${randomUUID()} Correlation ID: ${randomUUID()} Timestamp: ${new Date().toISOString()}`,
    error_codes: [code],
    timestamp: new Date().toISOString(),
    trace_id: randomUUID(),
    correlation_id: randomUUID(),
  });
}
