import { mkdirSync, renameSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { stringify } from 'yaml';
import type { Logger } from '../common/logger';
import type { DeploySettings } from './inputs';
import { isWorkload, type WorkloadKind } from './kinds';
import { expandManifestPaths, loadManifests } from './manifests';
import { refuseOlderRelease } from './ordering';
import { render, type Rendered } from './render';
import { maskSecretValues, redactSecret } from './secrets';
import { applyAll, type AppliedResource } from './kube/apply';
import type { KubeClient } from './kube/client';
import { waitForEndpoints, type ServiceEndpoint } from './kube/endpoints';
import { restorePodTemplates } from './kube/rollback';
import { waitForRollout, type RolloutResult, type WorkloadRef } from './kube/rollout';

export interface DeployResult {
  rendered: Rendered;
  bundlePath: string;
  applied: AppliedResource[];
  rollout?: RolloutResult;
  rollback?: {
    restored: WorkloadRef[];
    leftInPlace: string[];
    result?: RolloutResult;
    error?: string;
  };
  endpoints: ServiceEndpoint[];
  dryRun: boolean;
}

/** Renders the manifests and writes the bundle; needs no cluster. */
export async function renderManifests(
  settings: DeploySettings,
  logger: Logger,
): Promise<{ rendered: Rendered; bundlePath: string }> {
  const files = await expandManifestPaths(settings.manifests, settings.workspace);
  logger.info(
    `Manifests: ${files.map((file) => path.relative(settings.workspace, file) || file).join(', ')}`,
  );
  const manifests = loadManifests(files, settings.workspace);
  maskSecretValues(
    manifests.map(({ object }) => object),
    logger,
  );
  const rendered = render(
    manifests,
    {
      namespace: settings.namespace,
      images: settings.images,
      allowUnmatchedImages: settings.allowUnmatchedImages,
      labels: settings.labels,
      annotations: settings.annotations,
      provenance: settings.provenance,
    },
    logger,
  );
  for (const line of rendered.replacements) logger.info(`image ${line}`);
  writeBundle(settings.bundlePath, rendered);
  logger.info(`${rendered.objects.length} object(s) rendered into ${settings.bundlePath}`);
  return { rendered, bundlePath: settings.bundlePath };
}

/**
 * Written to a temporary name and renamed, so no half-written bundle is left behind. Secret
 * values are redacted: the bundle is a record of what was applied, often uploaded as an artifact.
 */
function writeBundle(file: string, rendered: Rendered): void {
  mkdirSync(path.dirname(file), { recursive: true });
  const text = rendered.objects
    .map(({ object }) => stringify(redactSecret(object), { lineWidth: 0 }))
    .join('---\n');
  const temporary = `${file}.partial`;
  writeFileSync(temporary, text);
  renameSync(temporary, file);
}

/**
 * Applies, waits, and on failure rolls back. A failed rollout is reported in the result
 * (not thrown) so main.ts can still write outputs and the summary before failing the step.
 */
export async function deploy(
  settings: DeploySettings,
  client: KubeClient,
  rendered: Rendered,
  bundlePath: string,
  logger: Logger,
): Promise<DeployResult> {
  await refuseOlderRelease(
    client,
    rendered.objects,
    settings.provenance,
    settings.allowOlderRelease,
    logger,
  );
  const applied = await logger.group(
    `Applying ${rendered.objects.length} object(s)${settings.dryRun ? ' (server-side dry run)' : ''}`,
    () =>
      applyAll(
        client,
        rendered.objects,
        { dryRun: settings.dryRun, forceConflicts: settings.forceConflicts },
        logger,
      ),
  );
  const result: DeployResult = {
    rendered,
    bundlePath,
    applied,
    endpoints: [],
    dryRun: settings.dryRun,
  };
  if (settings.dryRun) return result;

  const workloads: WorkloadRef[] = applied
    .filter((resource) => isWorkload(resource.kind))
    .map((resource) => ({
      info: resource.info,
      kind: resource.kind as WorkloadKind,
      name: resource.name,
      namespace: resource.namespace ?? rendered.namespace,
    }));
  const deadline = Date.now() + settings.timeoutMs;
  result.rollout = await logger.group(
    `Waiting for ${workloads.length} workload(s) to roll out`,
    () =>
      waitForRollout(
        client,
        workloads,
        { deadline, graceMs: settings.failureGraceMs, logLines: 20 },
        logger,
      ),
  );

  if (result.rollout.failure) {
    const { failure } = result.rollout;
    logger.warning(`Rollout of ${failure.ref.kind}/${failure.ref.name} failed: ${failure.message}`);
    if (failure.logs)
      logger.info(
        `Last log lines of ${failure.problem?.pod}/${failure.problem?.container}:\n${failure.logs}`,
      );
    if (settings.rollbackOnFailure) {
      result.rollback = await logger.group(
        'Rolling back to the pod templates before this run',
        async () => {
          const { restored, leftInPlace } = await restorePodTemplates(client, applied, logger);
          const rollback: NonNullable<DeployResult['rollback']> = { restored, leftInPlace };
          if (restored.length > 0) {
            rollback.result = await waitForRollout(
              client,
              restored,
              {
                deadline: Date.now() + settings.timeoutMs,
                graceMs: settings.failureGraceMs,
                logLines: 20,
              },
              logger,
            );
            if (rollback.result.failure) rollback.error = rollback.result.failure.message;
          }
          return rollback;
        },
      );
    }
    return result;
  }

  const services = applied
    .filter(
      (resource) =>
        resource.kind === 'Service' &&
        (resource.live.spec as { type?: string } | undefined)?.type === 'LoadBalancer',
    )
    .map((resource) => ({
      info: resource.info,
      name: resource.name,
      namespace: resource.namespace ?? rendered.namespace,
    }));
  if (services.length > 0) {
    result.endpoints = await logger.group('Waiting for LoadBalancer addresses', () =>
      waitForEndpoints(client, services, deadline, logger),
    );
    for (const endpoint of result.endpoints)
      logger.info(`${endpoint.service}: ${endpoint.address}`);
  }
  return result;
}
