import * as core from '@actions/core';
import { actionsLogger } from '../common/actions-logger';
import { createStsClient, WebIdentityCredentials } from '../common/aws-credentials';
import { createOidcCredential, TokenSource } from '../common/credential';
import { githubIdToken } from '../common/github-id-token';
import { ConfigurationError, errorMessage } from '../common/errors';
import { envInputSource, Inputs } from '../common/inputs';
import type { Logger } from '../common/logger';
import type { BlobAuth } from './azure-blob';
import { fetchModel } from './fetch';
import { readSettings, type AzureBlobSettings, type FetchSettings } from './inputs';
import { filesOutput, renderSummary } from './report';
import { S3Store } from './s3';
import type { ObjectStore } from './store';

/** The action: inputs → store → fetch → outputs and summary. */
export async function run(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const logger = actionsLogger();
  try {
    const settings = readSettings(new Inputs(envInputSource(env)), env, logger);
    const store = await createStore(settings, env, logger);
    const result = await logger.group(`Fetching model from ${store.description}`, () =>
      fetchModel(settings, store, logger),
    );
    core.setOutput('path', result.destination);
    core.setOutput('files', filesOutput(result));
    core.setOutput('model-digest', result.modelDigest);
    core.setOutput('cache-hit', String(result.cacheHit));
    logger.info(`model-digest ${result.modelDigest}${result.cacheHit ? ' (cache hit)' : ''}`);
    if (env.GITHUB_STEP_SUMMARY) {
      await core.summary.addRaw(renderSummary(result, store.description)).write();
    }
  } catch (error) {
    core.setFailed(errorMessage(error));
  }
}

async function createStore(
  settings: FetchSettings,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): Promise<ObjectStore> {
  const { store } = settings;
  if (store.provider === 's3') {
    const credentials = new WebIdentityCredentials(
      store.identity,
      githubIdToken,
      createStsClient(store.identity, logger),
      logger,
      env,
    );
    return new S3Store({
      bucket: store.bucket,
      region: store.identity.region,
      endpoint: store.endpoint,
      credentials: credentials.provider,
      roleArn: store.identity.roleArn,
      maxConnections: settings.concurrency,
      logger,
    });
  }
  // Required only for Azure: an S3 run does not evaluate the storage SDK's modules.
  const { AzureBlobStore } = await import('./azure-blob');
  return new AzureBlobStore({
    endpoint: store.endpoint,
    container: store.container,
    auth: blobAuth(store, env, logger),
    maxConnections: settings.concurrency,
    logger,
  });
}

function blobAuth(store: AzureBlobSettings, env: NodeJS.ProcessEnv, logger: Logger): BlobAuth {
  if (store.sasToken) return { kind: 'sas', query: store.sasToken };
  if (store.endpoint.protocol !== 'https:') {
    throw new ConfigurationError(
      `blob-endpoint '${store.endpoint}' is plain http, and Azure Storage accepts OIDC ` +
        `tokens only over https. Use an https endpoint, or a 'sas-token'.`,
    );
  }
  const credential = createOidcCredential(store.identity, githubIdToken, env, logger);
  return { kind: 'oidc', tokens: new TokenSource(credential, logger) };
}
