import { rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as core from '@actions/core';
import { actionsLogger } from '../common/actions-logger';
import { createOidcCredential, TokenSource } from '../common/credential';
import { githubIdToken } from '../common/github-id-token';
import { errorMessage } from '../common/errors';
import { envInputSource, Inputs } from '../common/inputs';
import type { Logger } from '../common/logger';
import { buildPush } from './build-push';
import { DockerCli } from './docker';
import { createStepDockerConfig, userDockerConfigDir } from './docker-config';
import { readSettings, type BuildPushSettings } from './inputs';
import { RegistryClient } from './oci/client';
import {
  AcrOidcCredentials,
  PasswordCredentials,
  type RegistryCredentials,
} from './oci/credentials';
import { renderSummary } from './report';
import { metadataOutput } from './result';

/** State shared with the post step, which removes the step's docker config if this could not. */
export const STATE_DOCKER_CONFIG = 'docker-config';
export const STATE_REGISTRY = 'registry';

/** The action: inputs → build, smoke test, push → outputs and summary. */
export async function run(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const logger = actionsLogger();
  let dockerConfig: string | undefined;
  try {
    const settings = readSettings(new Inputs(envInputSource(env)), env, logger);
    // One docker config for the whole step, layered over the user's; removed at the end (or by
    // the post step when the job is cancelled first).
    const config = createStepDockerConfig(
      env.RUNNER_TEMP || tmpdir(),
      env,
      settings.registry,
      logger,
    );
    dockerConfig = config.directory;
    core.saveState(STATE_DOCKER_CONFIG, config.directory);
    core.saveState(STATE_REGISTRY, settings.registry);
    if (config.carried.length > 0) {
      logger.info(
        `docker sign-ins kept from ${userDockerConfigDir(env)}: ${config.carried.join(', ')}`,
      );
    }
    let client: RegistryClient | undefined;
    const identity = settings.auth.kind === 'oidc' ? settings.auth.identity : undefined;
    const result = await buildPush(settings, {
      logger,
      docker: new DockerCli(logger, config.env),
      client: () => (client ??= registryClient(settings, env, logger)),
      canSignIn:
        settings.auth.kind === 'password' ||
        Boolean(env.ACTIONS_ID_TOKEN_REQUEST_URL && identity?.clientId && identity.tenantId),
    });
    core.setOutput('image', result.image);
    core.setOutput('digest', result.digest ?? '');
    core.setOutput('imageid', result.imageId ?? '');
    core.setOutput(
      'metadata',
      metadataOutput(result, `${settings.registry}/${settings.repository}`),
    );
    core.setOutput('tags', JSON.stringify(result.tags));
    core.setOutput('skipped', String(result.skipped));
    core.setOutput('bytes-uploaded', String(result.bytesUploaded));
    logger.info(`image ${result.image}${result.skipped ? ' (skipped: already current)' : ''}`);
    if (env.GITHUB_STEP_SUMMARY) await core.summary.addRaw(renderSummary(result)).write();
  } catch (error) {
    core.setFailed(errorMessage(error));
  } finally {
    if (dockerConfig) rmSync(dockerConfig, { recursive: true, force: true });
  }
}

function registryClient(
  settings: BuildPushSettings,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): RegistryClient {
  const scopes = [`repository:${settings.repository}:pull,push`];
  if (settings.baseImage && settings.baseImage.repository !== settings.repository) {
    scopes.push(`repository:${settings.baseImage.repository}:pull`);
  }
  return new RegistryClient({
    registry: settings.registry,
    credentials: registryCredentials(settings, env, logger),
    logger,
    scopes,
    chunkSize: settings.chunkSize,
  });
}

function registryCredentials(
  settings: BuildPushSettings,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): RegistryCredentials {
  if (settings.auth.kind === 'password') {
    return new PasswordCredentials(settings.auth.username, settings.auth.password, logger);
  }
  const identity = settings.auth.identity;
  const credential = createOidcCredential(identity, githubIdToken, env, logger);
  return new AcrOidcCredentials(new TokenSource(credential, logger), identity.tenantId!, logger);
}
