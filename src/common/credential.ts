import { ClientAssertionCredential, type AccessToken, type TokenCredential } from '@azure/identity';
import { transportHttpClient, type TransportHttpClient } from './azure-http-client';
import { cloudByName, type Cloud } from './clouds';
import { ConfigurationError, errorMessage } from './errors';
import type { Inputs } from './inputs';
import type { Logger } from './logger';
import { unreachable } from './proxy';

/** The common Azure identity inputs every action declares. */
export interface AzureIdentitySettings {
  /** Application (client) id of the app registration or managed identity with the federated credential. */
  clientId?: string;
  /** Directory (tenant) id. */
  tenantId?: string;
  /** Audience of the GitHub OIDC token; Entra expects api://AzureADTokenExchange. */
  audience: string;
  /** National cloud: sets the authority host and service suffixes. */
  cloud: Cloud;
  /** Entra authority host; the cloud's own unless overridden. */
  authorityHost: string;
  /** True when authority-host was overridden, so instance discovery must be skipped. */
  customAuthority: boolean;
}

export const DEFAULT_OIDC_AUDIENCE = 'api://AzureADTokenExchange';

export function readAzureIdentity(inputs: Inputs, env: NodeJS.ProcessEnv): AzureIdentitySettings {
  const cloud = cloudByName(inputs.string('cloud', 'AzurePublicCloud'));
  const authorityOverride = inputs.optional('authority-host');
  if (authorityOverride !== undefined && !/^https:\/\/[^/\s]+/.test(authorityOverride)) {
    throw new ConfigurationError(
      `Invalid authority-host '${authorityOverride}'. Expected an https URL such as ` +
        `https://login.microsoftonline.com.`,
    );
  }
  return {
    clientId: inputs.optional('client-id') ?? nonEmpty(env.AZURE_CLIENT_ID),
    tenantId: inputs.optional('tenant-id') ?? nonEmpty(env.AZURE_TENANT_ID),
    audience: inputs.string('audience', DEFAULT_OIDC_AUDIENCE),
    cloud,
    authorityHost: (authorityOverride ?? cloud.authorityHost).replace(/\/+$/, ''),
    customAuthority: authorityOverride !== undefined,
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value && value.trim() !== '' ? value.trim() : undefined;
}

/** Fetches a GitHub OIDC token for an audience; in the action, core.getIDToken. */
export type IdTokenProvider = (audience: string) => Promise<string>;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/**
 * A credential that trades GitHub's OIDC token for Entra tokens. The assertion callback asks
 * GitHub for a fresh OIDC token every time, because one fetched once expires within minutes
 * and a later token request would fail with AADSTS700024.
 */
export function createOidcCredential(
  settings: AzureIdentitySettings,
  idToken: IdTokenProvider,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): TokenCredential {
  if (!settings.clientId || !settings.tenantId) {
    const missing = [
      !settings.clientId && "'client-id' (or AZURE_CLIENT_ID)",
      !settings.tenantId && "'tenant-id' (or AZURE_TENANT_ID)",
    ].filter(Boolean);
    throw new ConfigurationError(
      `Azure sign-in needs ${missing.join(' and ')}: the ids of the app registration that ` +
        `trusts this repository's GitHub OIDC tokens, and of its tenant.`,
    );
  }
  for (const [name, value] of [
    ['client-id', settings.clientId],
    ['tenant-id', settings.tenantId],
  ] as const) {
    if (!GUID.test(value) && !(name === 'tenant-id' && /^[a-z0-9.-]+$/i.test(value))) {
      throw new ConfigurationError(
        `Invalid ${name} '${value}'. Expected a GUID such as 00000000-0000-0000-0000-000000000000.`,
      );
    }
  }
  if (!env.ACTIONS_ID_TOKEN_REQUEST_URL || !env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
    throw new ConfigurationError(
      'GitHub did not give this job an OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL is not ' +
        "set). Add 'permissions: id-token: write' to the workflow or job (keep 'contents: read' " +
        'for checkout). Workflows triggered from forks never get one.',
    );
  }
  const audience = settings.audience;
  // Entra is reached like every other service: proxy, timeouts, https only.
  const httpClient = transportHttpClient();
  const credential = new ClientAssertionCredential(
    settings.tenantId,
    settings.clientId,
    async () => {
      const token = await idToken(audience);
      logger.mask(token);
      return token;
    },
    {
      authorityHost: settings.authorityHost,
      disableInstanceDiscovery: settings.customAuthority,
      httpClient,
      retryOptions: { maxRetries: 3 },
    },
  );
  return withNetworkCause(credential, httpClient);
}

/**
 * @azure/identity turns a token request that got no answer into `network_error: See
 * https://aka.ms/msal.js.errors#network_error`, dropping why: a host name that does not resolve
 * (no proxy set on a runner that needs one), a proxy that refused or wants a password. This puts
 * the transport's own error back: a ConfigurationError from the proxy as it is, anything else
 * naming the authority that could not be reached.
 */
function withNetworkCause(
  credential: TokenCredential,
  httpClient: TransportHttpClient,
): TokenCredential {
  return {
    async getToken(scopes, options) {
      const started = Date.now();
      try {
        return await credential.getToken(scopes, options);
      } catch (error) {
        const failure = httpClient.lastFailure;
        if (!failure || failure.at < started || !/network_error/.test(errorMessage(error))) {
          throw error;
        }
        if (failure.error instanceof ConfigurationError) throw failure.error;
        throw new Error(unreachable(failure.url.origin, failure.error));
      }
    },
  };
}

/**
 * Hands out bearer tokens per scope, cached until five minutes before they expire, each
 * masked before any code could print it. It is also the TokenCredential handed to Azure SDK
 * clients (@azure/storage-blob), so their tokens are cached and masked the same way.
 */
export class TokenSource implements TokenCredential {
  private readonly cache = new Map<string, AccessToken>();
  private readonly pending = new Map<string, Promise<AccessToken>>();

  constructor(
    private readonly credential: TokenCredential,
    private readonly logger: Logger,
  ) {}

  async get(scope: string): Promise<string> {
    return (await this.getToken(scope)).token;
  }

  /** The SDK's face of `get`: one scope (the SDK's clients ask for one), with its expiry. */
  async getToken(scopes: string | string[]): Promise<AccessToken> {
    const list = Array.isArray(scopes) ? scopes : [scopes];
    if (list.length !== 1) throw new Error(`Expected one token scope, got ${list.length}.`);
    const scope = list[0];
    const cached = this.cache.get(scope);
    if (cached && cached.expiresOnTimestamp - 5 * 60_000 > Date.now()) return cached;
    // Requests that arrive together share one token request.
    let pending = this.pending.get(scope);
    if (!pending) {
      pending = this.fetch(scope).finally(() => this.pending.delete(scope));
      this.pending.set(scope, pending);
    }
    return pending;
  }

  private async fetch(scope: string): Promise<AccessToken> {
    let result;
    try {
      result = await this.credential.getToken(scope);
    } catch (error) {
      throw explainTokenFailure(error, scope);
    }
    if (!result) throw new Error(`Entra returned no token for ${scope}`);
    this.logger.mask(result.token);
    const token = { token: result.token, expiresOnTimestamp: result.expiresOnTimestamp };
    this.cache.set(scope, token);
    return token;
  }
}

/** Entra's AADSTS codes for a federated credential that does not match, with the fix. */
function explainTokenFailure(error: unknown, scope: string): Error {
  const message = errorMessage(error);
  if (error instanceof ConfigurationError) {
    return new ConfigurationError(`Could not get an Entra token for ${scope}: ${message}`);
  }
  if (/AADSTS700213|AADSTS70021|AADSTS700211|AADSTS700212/.test(message)) {
    return new ConfigurationError(
      `Entra rejected this workflow's GitHub OIDC token while asking for ${scope}: ` +
        `${firstLine(message)} The app registration needs a federated credential whose issuer is ` +
        `https://token.actions.githubusercontent.com, whose subject matches this job (for example ` +
        `repo:OWNER/REPO:ref:refs/heads/main, or repo:OWNER/REPO:environment:NAME when the job ` +
        `uses an environment) and whose audience is the 'audience' input.`,
    );
  }
  if (/AADSTS700016|AADSTS90002|AADSTS900023/.test(message)) {
    return new ConfigurationError(
      `Entra does not know the client-id or tenant-id: ${firstLine(message)}`,
    );
  }
  return new Error(`Could not get an Entra token for ${scope}: ${firstLine(message)}`);
}

function firstLine(message: string): string {
  const line = message.split('\n').find((text) => text.trim() !== '') ?? message;
  return line.trim().endsWith('.') ? line.trim() : `${line.trim()}.`;
}
