import { ConfigurationError, quote } from '../../common/errors';
import {
  assertSecureForCredentials,
  credentialForm,
  errorFactory,
  readBody,
  send,
  sendWithRetry,
  statusError,
  type HttpResponse,
} from '../../common/http';
import { HttpError, type ServiceError } from '../../common/http-error';
import type { Logger } from '../../common/logger';
import type { Challenge } from './challenge';

/** The user name ACR's token service takes with a refresh token as the password. */
export const ACR_REFRESH_TOKEN_USER = '00000000-0000-0000-0000-000000000000';
/** The Entra resource whose tokens ACR exchanges for its own. */
export const ACR_ENTRA_SCOPE = 'https://containerregistry.azure.net/.default';

/** Something that hands out Entra access tokens per scope (TokenSource). */
export interface EntraTokens {
  get(scope: string): Promise<string>;
}

/**
 * How the action proves who it is to a registry. `authorization` answers a registry's challenge
 * with an Authorization header for the scopes; `renew` drops anything cached, for the one retry
 * after a 401; `dockerLogin` gives the user name and password `docker login` takes.
 */
export interface RegistryCredentials {
  readonly description: string;
  /** `registry` is the host the challenge came from: the only host a token request may go to. */
  authorization(challenge: Challenge, scopes: string[], registry: string): Promise<string>;
  renew(): void;
  dockerLogin(
    challenge: Challenge,
    registry: string,
  ): Promise<{ username: string; password: string }>;
}

/**
 * ACR with GitHub OIDC: an Entra token for containerregistry.azure.net, exchanged at the
 * registry's /oauth2/exchange for an ACR refresh token, which /oauth2/token turns into access
 * tokens for repository scopes. The exchange endpoint lives next to the realm the registry names.
 */
export class AcrOidcCredentials implements RegistryCredentials {
  readonly description = 'ACR token exchange with an Entra token (GitHub OIDC)';
  private refreshToken?: Promise<string>;
  private readonly accessTokens = new Map<string, Promise<string>>();

  constructor(
    private readonly entra: EntraTokens,
    private readonly tenantId: string,
    private readonly logger: Logger,
  ) {}

  renew(): void {
    this.refreshToken = undefined;
    this.accessTokens.clear();
  }

  async authorization(challenge: Challenge, scopes: string[], registry: string): Promise<string> {
    const { realm, service } = bearerChallenge(challenge, registry);
    const key = `${realm} ${service} ${scopes.join(' ')}`;
    let token = this.accessTokens.get(key);
    if (!token) {
      token = this.accessToken(realm, service, scopes);
      this.accessTokens.set(key, token);
      token.catch(() => this.accessTokens.delete(key));
    }
    return `Bearer ${await token}`;
  }

  async dockerLogin(
    challenge: Challenge,
    registry: string,
  ): Promise<{ username: string; password: string }> {
    const { realm, service } = bearerChallenge(challenge, registry);
    return { username: ACR_REFRESH_TOKEN_USER, password: await this.refresh(realm, service) };
  }

  private refresh(realm: string, service: string): Promise<string> {
    if (!this.refreshToken) {
      this.refreshToken = this.exchange(realm, service);
      this.refreshToken.catch(() => (this.refreshToken = undefined));
    }
    return this.refreshToken;
  }

  private async exchange(realm: string, service: string): Promise<string> {
    const entraToken = await this.entra.get(ACR_ENTRA_SCOPE);
    const url = new URL('/oauth2/exchange', realm);
    const answer = await tokenRequest(
      url,
      new URLSearchParams({
        grant_type: 'access_token',
        service,
        tenant: this.tenantId,
        access_token: entraToken,
      }),
      this.logger,
      'ACR token exchange',
    );
    const token = answer.refresh_token;
    if (typeof token !== 'string') throw new Error(`${url} answered without a refresh_token`);
    this.logger.mask(token);
    return token;
  }

  private async accessToken(realm: string, service: string, scopes: string[]): Promise<string> {
    const refreshToken = await this.refresh(realm, service);
    const answer = await tokenRequest(
      new URL(realm),
      new URLSearchParams({
        grant_type: 'refresh_token',
        service,
        scope: scopes.join(' '),
        refresh_token: refreshToken,
      }),
      this.logger,
      'ACR access token',
    );
    const token = answer.access_token;
    if (typeof token !== 'string') throw new Error(`${realm} answered without an access_token`);
    this.logger.mask(token);
    return token;
  }
}

/** A user name and password (ACR admin user or token, or any other registry). */
export class PasswordCredentials implements RegistryCredentials {
  readonly description: string;
  private readonly tokens = new Map<string, Promise<string>>();

  constructor(
    private readonly username: string,
    private readonly password: string,
    private readonly logger: Logger,
  ) {
    this.description = `user '${username}'`;
  }

  renew(): void {
    this.tokens.clear();
  }

  async authorization(challenge: Challenge, scopes: string[], registry: string): Promise<string> {
    const basic = `Basic ${Buffer.from(`${this.username}:${this.password}`).toString('base64')}`;
    this.logger.mask(basic.slice(6));
    if (challenge.scheme === 'basic') return basic;
    const { realm, service } = bearerChallenge(challenge, registry);
    const key = `${realm} ${service} ${scopes.join(' ')}`;
    let token = this.tokens.get(key);
    if (!token) {
      token = getToken(realm, service, scopes, basic, this.logger);
      this.tokens.set(key, token);
      token.catch(() => this.tokens.delete(key));
    }
    return `Bearer ${await token}`;
  }

  async dockerLogin(): Promise<{ username: string; password: string }> {
    return { username: this.username, password: this.password };
  }
}

/**
 * The realm and service of a bearer challenge, once the realm is known to be the registry's own
 * token endpoint: on the registry's host, over https (plain http only for a loopback registry).
 * A registry that names another host would receive the Entra token or the password, so it is
 * refused rather than followed.
 */
function bearerChallenge(
  challenge: Challenge,
  registry: string,
): { realm: string; service: string } {
  if (challenge.scheme !== 'bearer' || !challenge.realm) {
    throw new Error(
      `The registry's WWW-Authenticate challenge (${challenge.scheme}) names no token realm`,
    );
  }
  let realm: URL;
  try {
    realm = new URL(challenge.realm);
  } catch {
    throw new ConfigurationError(
      `Registry ${quote(registry)} names an invalid token realm ${quote(challenge.realm)}.`,
    );
  }
  if (
    realm.host !== registry.toLowerCase() ||
    (realm.protocol !== 'https:' && realm.protocol !== 'http:')
  ) {
    throw new ConfigurationError(
      `Registry ${quote(registry)} names the token realm ${quote(challenge.realm)}, which is not ` +
        `on the registry's own host. Credentials are sent only to the registry itself (ACR's ` +
        `realm is https://<registry>/oauth2/token); check the 'registry' input.`,
    );
  }
  assertSecureForCredentials(realm);
  return { realm: challenge.realm, service: challenge.service ?? registry };
}

/** GET realm?service=&scope= as Docker does, with basic credentials. */
async function getToken(
  realm: string,
  service: string,
  scopes: string[],
  basic: string,
  logger: Logger,
): Promise<string> {
  const url = new URL(realm);
  url.searchParams.set('service', service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  const response = await sendWithRetry(
    () => send({ method: 'GET', url, headers: { authorization: basic }, idleTimeoutMs: 30_000 }),
    'registry token',
    { logger, parse: registryErrorBody, create: registryError },
  );
  const answer = await parseTokenAnswer(response, url, 'registry token');
  const token = answer.token ?? answer.access_token;
  if (typeof token !== 'string')
    throw new Error(`${url.origin}${url.pathname} answered without a token`);
  logger.mask(token);
  return token;
}

async function tokenRequest(
  url: URL,
  form: URLSearchParams,
  logger: Logger,
  what: string,
): Promise<Record<string, unknown>> {
  const where = `${what} at ${url.origin}${url.pathname}`;
  const response = await sendWithRetry(() => send(credentialForm(url, form)), where, {
    logger,
    parse: registryErrorBody,
    create: registryError,
  });
  return parseTokenAnswer(response, url, what);
}

async function parseTokenAnswer(
  response: HttpResponse,
  url: URL,
  what: string,
): Promise<Record<string, unknown>> {
  const where = `${url.origin}${url.pathname}`;
  if (response.status === 200) {
    const text = (await readBody(response.body, 1024 * 1024)).toString('utf8');
    return JSON.parse(text) as Record<string, unknown>;
  }
  const error = await statusError(
    response,
    `${what} at ${where}`,
    registryErrorBody,
    registryError,
  );
  if (response.status === 401 || response.status === 403 || response.status === 400) {
    throw new ConfigurationError(
      `${what} refused at ${where} (HTTP ${response.status}): ` +
        `${error.serviceMessage ?? error.code ?? 'no details'}. ` +
        'For ACR with OIDC, the app registration (client-id) needs a role assignment on the ' +
        'registry (AcrPush to push), and the registry must allow Entra authentication.',
    );
  }
  throw error;
}

/** An answer of the registry or its token service with a status the client did not expect. */
export class RegistryError extends HttpError {
  override readonly name = 'RegistryError';
}

export const registryError = errorFactory(RegistryError);

/**
 * A registry's `{"errors":[{code,message}]}` body, or a token service's OAuth
 * `{"error","error_description"}`, or text.
 */
export function registryErrorBody(text: string): ServiceError {
  try {
    const parsed = JSON.parse(text) as {
      errors?: Array<{ code?: string; message?: string }>;
      error?: string;
      error_description?: string;
    };
    if (parsed.errors?.length) {
      return {
        code: parsed.errors[0].code,
        message: parsed.errors
          .map((error) => `${error.code ?? ''} ${error.message ?? ''}`.trim())
          .join('; '),
      };
    }
    if (parsed.error)
      return { code: parsed.error, message: parsed.error_description ?? parsed.error };
  } catch {
    // Not JSON: show it as it is.
  }
  return { message: text.trim().slice(0, 300) || undefined };
}
