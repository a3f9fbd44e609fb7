import * as core from '@actions/core';
import { actionsLogger } from '../common/actions-logger';
import { createOidcCredential, TokenSource } from '../common/credential';
import { githubIdToken } from '../common/github-id-token';
import { errorMessage } from '../common/errors';
import { envInputSource, Inputs } from '../common/inputs';
import { connectCluster } from './cluster';
import { deploy, renderManifests } from './deploy';
import { readSettings } from './inputs';
import { ManifestError } from './manifests';
import { KubeClient } from './kube/client';
import {
  failureMessage,
  progressiveOutputs,
  renderProgressiveSummary,
  renderSummary,
  resourcesOutput,
  revisionOutput,
} from './report';
import { runProgressive } from './strategy/progressive';

/**
 * The action: inputs → render → cluster → apply, wait, roll back → outputs and summary; with
 * strategy canary or blue-green, the new version beside the stable one, analysed, promoted or
 * rejected.
 */
export async function run(env: NodeJS.ProcessEnv = process.env): Promise<void> {
  const logger = actionsLogger();
  let client: KubeClient | undefined;
  try {
    const settings = readSettings(new Inputs(envInputSource(env)), env, logger);
    const { rendered, bundlePath } = await logger.group('Rendering manifests', async () =>
      renderManifests(settings, logger),
    );
    core.setOutput('bundle', bundlePath);
    core.setOutput('namespace', rendered.namespace);
    let tokens: TokenSource | undefined;
    const tokenSource = () =>
      (tokens ??= new TokenSource(
        createOidcCredential(settings.identity, githubIdToken, env, logger),
        logger,
      ));
    const connection = await logger.group('Connecting to the cluster', async () => {
      const connection = await connectCluster(
        settings.cluster,
        settings.trust,
        tokenSource,
        settings.identity.cloud.resourceManager,
        logger,
      );
      logger.info(`API server ${connection.server.origin}`);
      return connection;
    });
    client = new KubeClient(connection, logger);
    if (settings.strategy !== 'basic') {
      const progressive = await runProgressive(settings, client, rendered, bundlePath, logger);
      for (const [name, value] of Object.entries(progressiveOutputs(progressive)))
        core.setOutput(name, value);
      if (env.GITHUB_STEP_SUMMARY) {
        await core.summary
          .addRaw(renderProgressiveSummary(progressive, connection.description))
          .write();
      }
      if (progressive.failure) core.setFailed(progressive.failure);
      return;
    }
    const result = await deploy(settings, client, rendered, bundlePath, logger);
    core.setOutput('resources', resourcesOutput(result));
    core.setOutput('revision', revisionOutput(result));
    core.setOutput('rolled-back', String(Boolean(result.rollback?.restored.length)));
    core.setOutput('service-endpoints', JSON.stringify(result.endpoints.map((e) => e.address)));
    if (env.GITHUB_STEP_SUMMARY) {
      await core.summary.addRaw(renderSummary(result, connection.description)).write();
    }
    const failure = failureMessage(result);
    if (failure) core.setFailed(failure);
  } catch (error) {
    if (error instanceof ManifestError) {
      // Anchored to the file and line, the runner shows each one on the manifest in a pull
      // request; the step fails with them.
      for (const problem of error.problems) {
        core.error(problem.message, {
          title: 'Invalid manifest',
          file: problem.source.file,
          startLine: problem.source.line,
        });
      }
      process.exitCode = core.ExitCode.Failure;
    } else {
      core.setFailed(errorMessage(error));
    }
  } finally {
    client?.close();
  }
}
