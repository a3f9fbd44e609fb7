import { ConfigurationError } from '../../common/errors';
import { readBody } from '../../common/http';
import type { Logger } from '../../common/logger';
import { HttpStatusError, isTransient, withRetry } from '../../common/retry';
import type { Challenge } from './challenge';
import { sendRequest } from './transport';

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
  authorization(challenge: Challenge, scopes: string[]): Promise<string>;
  renew(): void;
  dockerLogin(challenge: Challenge): Promise<{ username: string; password: string }>;
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

  async authorization(challenge: Challenge, scopes: string[]): Promise<string> {
    const { realm, service } = bearerChallenge(challenge);
    const key = `${realm} ${service} ${scopes.join(' ')}`;
    let token = this.accessTokens.get(key);
    if (!token) {
      token = this.accessToken(realm, service, scopes);
      this.accessTokens.set(key, token);
      token.catch(() => this.accessTokens.delete(key));
    }
    return `Bearer ${await token}`;
  }

  async dockerLogin(challenge: Challenge): Promise<{ username: string; password: string }> {
    const { realm, service } = bearerChallenge(challenge);
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

  async authorization(challenge: Challenge, scopes: string[]): Promise<string> {
    const basic = `Basic ${Buffer.from(`${this.username}:${this.password}`).toString('base64')}`;
    this.logger.mask(basic.slice(6));
    if (challenge.scheme === 'basic') return basic;
    const { realm, service } = bearerChallenge(challenge);
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

/** No credentials: anonymous tokens, for public or test registries. */
export class AnonymousCredentials implements RegistryCredentials {
  readonly description = 'anonymous';
  constructor(private readonly logger: Logger) {}
  renew(): void {}
  async authorization(challenge: Challenge, scopes: string[]): Promise<string> {
    if (challenge.scheme === 'basic') {
      throw new ConfigurationError(
        'The registry asks for a user name and password; set username and password, or ' +
          'client-id and tenant-id for ACR.',
      );
    }
    const { realm, service } = bearerChallenge(challenge);
    return `Bearer ${await getToken(realm, service, scopes, undefined, this.logger)}`;
  }
  async dockerLogin(): Promise<{ username: string; password: string }> {
    throw new ConfigurationError(
      'docker login needs credentials: set username and password, or client-id and tenant-id.',
    );
  }
}

function bearerChallenge(challenge: Challenge): { realm: string; service: string } {
  if (challenge.scheme !== 'bearer' || !challenge.realm) {
    throw new Error(
      `The registry's WWW-Authenticate challenge (${challenge.scheme}) names no token realm`,
    );
  }
  return { realm: challenge.realm, service: challenge.service ?? new URL(challenge.realm).host };
}

/** GET realm?service=&scope= as Docker does, with basic credentials or none. */
async function getToken(
  realm: string,
  service: string,
  scopes: string[],
  basic: string | undefined,
  logger: Logger,
): Promise<string> {
  const url = new URL(realm);
  url.searchParams.set('service', service);
  for (const scope of scopes) url.searchParams.append('scope', scope);
  const answer = await withRetry(
    async () => {
      const response = await sendRequest({
        method: 'GET',
        url,
        headers: basic ? { authorization: basic } : {},
      });
      return parseTokenAnswer(response, url, 'registry token');
    },
    { description: 'registry token', logger, retryable: isTransient },
  );
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
  return withRetry(
    async () => {
      const response = await sendRequest({
        method: 'POST',
        url,
        headers: { 'content-type': 'application/x-www-form-urlencoded' },
        body: form.toString(),
      });
      return parseTokenAnswer(response, url, what);
    },
    { description: what, logger, retryable: isTransient },
  );
}

async function parseTokenAnswer(
  response: Awaited<ReturnType<typeof sendRequest>>,
  url: URL,
  what: string,
): Promise<Record<string, unknown>> {
  const text = (await readBody(response.body, 1024 * 1024)).toString('utf8');
  if (response.status === 200) return JSON.parse(text) as Record<string, unknown>;
  const where = `${url.origin}${url.pathname}`;
  if (response.status === 401 || response.status === 403 || response.status === 400) {
    throw new ConfigurationError(
      `${what} refused at ${where} (HTTP ${response.status}): ${registryErrorText(text)}. ` +
        'For ACR with OIDC, the app registration (client-id) needs a role assignment on the ' +
        'registry (AcrPush to push), and the registry must allow Entra authentication.',
    );
  }
  throw new HttpStatusError(
    `${what} at ${where} failed: HTTP ${response.status}`,
    response.status,
    undefined,
  );
}

/** The message of a registry's `{"errors":[{code,message}]}` body, or the raw text. */
export function registryErrorText(text: string): string {
  try {
    const parsed = JSON.parse(text) as { errors?: Array<{ code?: string; message?: string }> };
    if (parsed.errors?.length) {
      return parsed.errors
        .map((error) => `${error.code ?? ''} ${error.message ?? ''}`.trim())
        .join('; ');
    }
    const oauth = parsed as { error?: string; error_description?: string };
    if (oauth.error)
      return `${oauth.error}${oauth.error_description ? `: ${oauth.error_description}` : ''}`;
  } catch {
    // Not JSON: show it as it is.
  }
  return text.trim().slice(0, 300) || 'no details';
}
