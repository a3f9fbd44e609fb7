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
      /** The app's private key (RS256), parsed; never logged. */
      privateKey: KeyObject;
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
}

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
} as const;

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
  let apiUrl: URL;
  try {
    apiUrl = new URL(apiText.replace(/\/+$/, ''));
    if (apiUrl.protocol !== 'https:' && apiUrl.protocol !== 'http:') throw new Error('scheme');
  } catch {
    throw new ConfigurationError(
      `Invalid app setting ${SETTING.apiUrl} ${quote(apiText)}. Expected an https URL such as ` +
        `https://api.github.com or https://ghes.example.com/api/v3.`,
    );
  }

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
  let privateKey: KeyObject;
  try {
    // Portal and CLI users often paste the PEM with literal \n sequences.
    privateKey = createPrivateKey(privateKeyText!.replace(/\\n/g, '\n'));
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
  return { kind: 'app', appId: appId!, installationId: installationId!, privateKey };
}
