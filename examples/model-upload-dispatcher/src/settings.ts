import { createPrivateKey, type KeyObject } from 'node:crypto';
import { ConfigurationError, quote } from '../../../src/common/errors';

/** How the dispatcher signs in to GitHub. */
export type GitHubAuth =
  | {
      kind: 'app';
      /** The GitHub App's id (or client id): the `iss` of the app's JWT. */
      appId: string;
      /** The installation of the app on the repository's owner. */
      installationId: string;
      /** The app's RSA private key as PEM (checked to parse); never logged. */
      privateKeyPem: string;
    }
  | {
      kind: 'token';
      /** A fine-grained token with Contents: write on the repository; never logged. */
      token: string;
    };

/** The function's app settings, read once, checked, typed. */
export interface DispatcherSettings {
  /** owner/repo that receives the repository_dispatch. */
  repository: { owner: string; repo: string };
  /** REST API root: https://api.github.com, or a GitHub Enterprise Server's /api/v3. */
  apiUrl: URL;
  auth: GitHubAuth;
  /** The storage account whose events are accepted (Event Grid's `topic`), lower-cased. */
  storageAccountId: string;
  /** Only blobs created in this container are dispatched. */
  container: string;
  /** Only blobs whose names start with this are dispatched ('' for all). */
  prefix: string;
  /** The repository_dispatch event_type; the caller workflow listens for it. */
  eventType: string;
  /**
   * A wait GitHub asks for (Retry-After, rate-limit reset) longer than this is not waited out:
   * the delivery fails and Event Grid redelivers later. Below Event Grid's 30 s answer timeout.
   */
  maxWaitMs: number;
  /** Attempts per GitHub request, the first included. */
  maxAttempts: number;
  /** Who may deliver events: checked on the bearer token Event Grid sends with each one. */
  entra: EntraSettings;
}

/** The Entra ID token Event Grid presents (a webhook subscription with Entra authentication). */
export interface EntraSettings {
  /** The tenant that issues the tokens: their `tid`, and the issuer's path. */
  tenantId: string;
  /** Accepted `aud` values: the webhook app registration's client id and/or App ID URI. */
  audiences: string[];
  /** https://login.microsoftonline.com, a sovereign cloud's, or a test double's. */
  authorityHost: URL;
  /** The application id of Event Grid's service principal: the token's `appid`/`azp`. */
  eventGridAppId: string;
}

/** Microsoft.EventGrid's first-party application id, the caller of every secure webhook. */
export const EVENT_GRID_APP_ID = '4962773b-9cdb-44cf-a8bf-237846a00ab7';
/** The app role the webhook's app registration grants Event Grid (and nobody else). */
export const EVENT_GRID_ROLE = 'AzureEventGridSecureWebhookSubscriber';

/** App setting names, as they appear in the function app's configuration and in infra/main.bicep. */
export const SETTING = {
  repository: 'GITHUB_REPOSITORY',
  apiUrl: 'GITHUB_API_URL',
  token: 'GITHUB_TOKEN',
  appId: 'GITHUB_APP_ID',
  installationId: 'GITHUB_APP_INSTALLATION_ID',
  privateKey: 'GITHUB_APP_PRIVATE_KEY',
  storageAccountId: 'MODELS_STORAGE_ACCOUNT_ID',
  container: 'MODELS_CONTAINER',
  prefix: 'MODELS_PREFIX',
  eventType: 'DISPATCH_EVENT_TYPE',
  maxWaitSeconds: 'GITHUB_MAX_WAIT_SECONDS',
  entraTenantId: 'ENTRA_TENANT_ID',
  entraAudience: 'ENTRA_AUDIENCE',
  entraAuthorityHost: 'ENTRA_AUTHORITY_HOST',
  eventGridAppId: 'EVENT_GRID_APP_ID',
} as const;

const GUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Hosts that never leave the machine: plain http to them carries no token across a network. */
export function isLoopbackHost(hostname: string): boolean {
  const host = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  return host === 'localhost' || host === '::1' || /^127(\.\d{1,3}){3}$/.test(host);
}

/**
 * A URL that credentials are sent to: https, or plain http to a loopback host only (how docker
 * treats localhost registries); anything else is a ConfigurationError naming the setting.
 */
function credentialUrl(name: string, text: string, example: string): URL {
  let url: URL;
  try {
    url = new URL(text.replace(/\/+$/, ''));
  } catch {
    throw new ConfigurationError(
      `Invalid app setting ${name} ${quote(text)}. Expected an https URL such as ${example}.`,
    );
  }
  const secure =
    url.protocol === 'https:' || (url.protocol === 'http:' && isLoopbackHost(url.hostname));
  if (!secure || url.username || url.password || url.search || url.hash) {
    throw new ConfigurationError(
      `Invalid app setting ${name} ${quote(text)}. Expected an https URL such as ${example} ` +
        `(plain http only to a loopback host; no credentials, query or fragment in it): ` +
        `tokens are sent there.`,
    );
  }
  return url;
}

const STORAGE_ACCOUNT_ID =
  /^\/subscriptions\/[^/]+\/resourceGroups\/[^/]+\/providers\/Microsoft\.Storage\/storageAccounts\/[a-z0-9]{3,24}$/i;
const CONTAINER = /^(?!.*--)[a-z0-9][a-z0-9-]{1,61}[a-z0-9]$/;
const REPOSITORY = /^([A-Za-z0-9-]+)\/([A-Za-z0-9_.-]+)$/;

/** Reads the settings from the function's environment; every mistake names the setting. */
export function readSettings(env: Record<string, string | undefined>): DispatcherSettings {
  const value = (name: string) => env[name]?.trim() || undefined;
  const required = (name: string, expected: string) => {
    const found = value(name);
    if (!found)
      throw new ConfigurationError(`App setting ${name} is not set. Expected ${expected}.`);
    return found;
  };

  const repositoryText = required(SETTING.repository, '{owner}/{repo}');
  const repositoryMatch = REPOSITORY.exec(repositoryText);
  if (!repositoryMatch) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.repository} ${quote(repositoryText)}. Expected {owner}/{repo}.`,
    );
  }

  const apiText = value(SETTING.apiUrl) ?? 'https://api.github.com';
  const apiUrl = credentialUrl(
    SETTING.apiUrl,
    apiText,
    'https://api.github.com or https://ghes.example.com/api/v3',
  );

  const storageAccountId = required(
    SETTING.storageAccountId,
    'the storage account resource id /subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}',
  );
  if (!STORAGE_ACCOUNT_ID.test(storageAccountId)) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.storageAccountId} ${quote(storageAccountId)}. Expected ` +
        `/subscriptions/{id}/resourceGroups/{group}/providers/Microsoft.Storage/storageAccounts/{name}.`,
    );
  }

  const container = required(SETTING.container, 'a blob container name such as models');
  if (!CONTAINER.test(container)) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.container} ${quote(container)}. Expected a container name: ` +
        `3-63 lower-case letters, digits and single hyphens.`,
    );
  }

  const prefix = value(SETTING.prefix) ?? '';
  if (prefix.startsWith('/')) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.prefix} ${quote(prefix)}. Expected a blob name prefix ` +
        `without a leading slash, such as resnet/ or models/v2/.`,
    );
  }

  const eventType = value(SETTING.eventType) ?? 'model-uploaded';
  if (eventType.length > 100) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.eventType} ${quote(eventType)}. Expected at most 100 characters.`,
    );
  }

  const waitText = value(SETTING.maxWaitSeconds) ?? '20';
  // Event Grid gives up on an answer after 30 seconds and redelivers: a longer wait would
  // dispatch the same upload twice.
  if (!/^\d+$/.test(waitText) || Number(waitText) > 25) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.maxWaitSeconds} ${quote(waitText)}. Expected whole seconds from 0 to 25 (Event Grid waits 30 s for an answer).`,
    );
  }

  return {
    repository: { owner: repositoryMatch[1], repo: repositoryMatch[2] },
    apiUrl,
    auth: readAuth(value),
    storageAccountId: storageAccountId.toLowerCase(),
    container,
    prefix,
    eventType,
    maxWaitMs: Number(waitText) * 1000,
    maxAttempts: 5,
    entra: readEntra(value, required),
  };
}

function readEntra(
  value: (name: string) => string | undefined,
  required: (name: string, expected: string) => string,
): EntraSettings {
  const tenantId = required(SETTING.entraTenantId, 'the directory (tenant) id, a GUID');
  if (!GUID.test(tenantId)) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.entraTenantId} ${quote(tenantId)}. Expected the directory (tenant) id, a GUID.`,
    );
  }
  const audienceText = required(
    SETTING.entraAudience,
    "the webhook app registration's client id or App ID URI (what the Event Grid subscription names)",
  );
  const audiences = audienceText
    .split(',')
    .map((item) => item.trim())
    .filter(Boolean);
  for (const audience of audiences) {
    if (!GUID.test(audience) && !/^(api|https):\/\/\S+$/.test(audience)) {
      throw new ConfigurationError(
        `Invalid app setting ${SETTING.entraAudience} ${quote(audience)}. Expected the webhook ` +
          `app registration's client id (a GUID) or App ID URI (api://... or https://...), comma-separated.`,
      );
    }
  }
  const authorityHost = credentialUrl(
    SETTING.entraAuthorityHost,
    value(SETTING.entraAuthorityHost) ?? 'https://login.microsoftonline.com',
    'https://login.microsoftonline.com',
  );
  if (authorityHost.protocol !== 'https:') {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.entraAuthorityHost} ${quote(authorityHost.toString())}. ` +
        `Expected an https URL such as https://login.microsoftonline.com: Entra's keys come from there.`,
    );
  }
  const eventGridAppId = value(SETTING.eventGridAppId) ?? EVENT_GRID_APP_ID;
  if (!GUID.test(eventGridAppId)) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.eventGridAppId} ${quote(eventGridAppId)}. Expected an application id (GUID).`,
    );
  }
  return {
    tenantId: tenantId.toLowerCase(),
    audiences,
    authorityHost,
    eventGridAppId: eventGridAppId.toLowerCase(),
  };
}

function readAuth(value: (name: string) => string | undefined): GitHubAuth {
  const token = value(SETTING.token);
  const appId = value(SETTING.appId);
  const installationId = value(SETTING.installationId);
  const privateKeyText = value(SETTING.privateKey);
  const appSettings = [appId, installationId, privateKeyText].filter(Boolean).length;

  if (token && appSettings > 0) {
    throw new ConfigurationError(
      `Both ${SETTING.token} and ${SETTING.appId}/${SETTING.installationId}/${SETTING.privateKey} ` +
        `are set. Expected one way to sign in to GitHub: a GitHub App (preferred) or a token.`,
    );
  }
  if (token) {
    // Secrets are never quoted back; only their shape is described.
    if (/\s/.test(token)) {
      throw new ConfigurationError(
        `Invalid app setting ${SETTING.token}: it contains whitespace. Expected a fine-grained ` +
          `personal access token (github_pat_...).`,
      );
    }
    return { kind: 'token', token };
  }
  if (appSettings === 0) {
    throw new ConfigurationError(
      `No GitHub credentials. Expected ${SETTING.appId}, ${SETTING.installationId} and ` +
        `${SETTING.privateKey} (a GitHub App), or ${SETTING.token} (a fine-grained token).`,
    );
  }
  for (const [name, found] of [
    [SETTING.appId, appId],
    [SETTING.installationId, installationId],
    [SETTING.privateKey, privateKeyText],
  ] as const) {
    if (!found) {
      throw new ConfigurationError(
        `App setting ${name} is not set. A GitHub App needs ${SETTING.appId}, ` +
          `${SETTING.installationId} and ${SETTING.privateKey}.`,
      );
    }
  }
  if (!/^(\d+|Iv[0-9A-Za-z.]+)$/.test(appId!)) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.appId} ${quote(appId!)}. Expected the app's numeric id or its client id (Iv...).`,
    );
  }
  if (!/^\d+$/.test(installationId!)) {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.installationId} ${quote(installationId!)}. Expected a numeric installation id.`,
    );
  }
  // Portal and CLI users often paste the PEM with literal \n sequences.
  const privateKeyPem = privateKeyText!.replace(/\\n/g, '\n');
  let privateKey: KeyObject;
  try {
    privateKey = createPrivateKey(privateKeyPem);
  } catch {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.privateKey}: not a PEM private key. Expected the contents of ` +
        `the .pem file GitHub generated for the app (-----BEGIN RSA PRIVATE KEY----- ...).`,
    );
  }
  if (privateKey.asymmetricKeyType !== 'rsa') {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.privateKey}: a ${privateKey.asymmetricKeyType} key. Expected ` +
        `the app's RSA private key.`,
    );
  }
  return { kind: 'app', appId: appId!, installationId: installationId!, privateKeyPem };
}
