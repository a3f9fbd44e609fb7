import * as core from '@actions/core';
import { actionsLogger } from '../common/actions-logger';
import { createOidcCredential, TokenSource } from '../common/credential';
import { ConfigurationError, errorMessage } from '../common/errors';
import { envInputSource, Inputs } from '../common/inputs';
import type { Logger } from '../common/logger';
import { AzureBlobStore, type BlobAuth } from './azure-blob';
import { fetchModel } from './fetch';
import { readSettings, type FetchSettings } from './inputs';
import { filesOutput, renderSummary } from './report';

/** The action: inputs → store → fetch → outputs and summary. */
export async function run(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const logger = actionsLogger();
  try {
    const settings = readSettings(new Inputs(envInputSource(env)), env, logger);
    const store = new AzureBlobStore({
      endpoint: settings.endpoint,
      container: settings.container,
      auth: blobAuth(settings, env, logger),
      maxConnections: settings.concurrency,
      logger,
    });
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

function blobAuth(settings: FetchSettings, env: NodeJS.ProcessEnv, logger: Logger): BlobAuth {
  if (settings.sasToken) return { kind: 'sas', query: settings.sasToken };
  if (settings.endpoint.protocol !== 'https:') {
    throw new ConfigurationError(
      `blob-endpoint '${settings.endpoint}' is plain http, and Azure Storage accepts OIDC ` +
        `tokens only over https. Use an https endpoint, or a 'sas-token'.`,
    );
  }
  const credential = createOidcCredential(
    settings.identity,
    (audience) => core.getIDToken(audience),
    env,
    logger,
  );
  return { kind: 'oidc', tokens: new TokenSource(credential, logger) };
}
