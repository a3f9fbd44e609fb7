import { ConfigurationError } from '../../common/errors';
import { deploy } from '../deploy';
import type { KubeObject } from '../manifests';
import type { RenderedObject } from '../render';
import { failureMessage } from '../report';
import type { AnalysisTarget } from './analyse';
import {
  deleteAll,
  deploymentInfo,
  deploymentsOf,
  judgedVersions,
  namespaceOf,
  deployNewVersion,
  type Context,
} from './context';
import { asManifest, canaryReplicasFor, podSelector, variantName, variantOf } from './variants';

const replicasOf = (object: KubeObject): number =>
  (object.spec as { replicas?: number } | undefined)?.replicas ?? 1;

/**
 * Canary by pod traffic split, as Azure/k8s-deploy does it: for each Deployment `<name>`,
 * `<name>-canary` runs the new pod template and `<name>-baseline` the stable one, with as
 * many pods each, while `<name>` is untouched; the Service selects all of them, so the
 * canary gets its share of real traffic. Returns the pods to analyse.
 */
export async function deployCanary(context: Context): Promise<AnalysisTarget | undefined> {
  const { settings, client, rendered, logger, result } = context;
  const deployments = deploymentsOf(rendered, 'canary');
  const info = await deploymentInfo(client);
  const objects: RenderedObject[] = [];
  let target: AnalysisTarget | undefined;
  for (const entry of rendered.objects) {
    if (entry.object.kind !== 'Deployment') {
      objects.push(entry);
      continue;
    }
    const { object, source } = entry;
    const name = object.metadata.name!;
    const live = await client.get(info, namespaceOf(object, rendered), name);
    const replicas =
      'count' in settings.canaryReplicas
        ? settings.canaryReplicas.count
        : canaryReplicasFor(settings.canaryReplicas.percentage, replicasOf(live ?? object));
    const canary = variantOf(object, 'canary', replicas, 'canary');
    objects.push({ object: canary, source });
    const baseline = live ? variantOf(asManifest(live), 'baseline', replicas, 'canary') : undefined;
    if (baseline) objects.push({ object: baseline, source });
    result.pairs.push({
      workload: name,
      candidate: canary.metadata.name!,
      stable: baseline?.metadata.name,
      replicas,
    });
    logger.info(
      live
        ? `Deployment/${name}: ${replicas} canary and ${replicas} baseline pod(s) beside its ${replicasOf(live)}`
        : `Deployment/${name} does not run yet: ${replicas} canary pod(s), no baseline`,
    );
    if (!target || (!hasPorts(target.candidate) && hasPorts(canary))) {
      target = {
        candidate: canary,
        candidateSelector: podSelector(canary),
        stableSelector: baseline && podSelector(baseline),
      };
    }
  }
  if (target && deployments.length > 1)
    logger.info(`The analysis is sent to ${target.candidate.metadata.name}.`);
  const ok = await deployNewVersion(context, objects, 'Canary and baseline', {
    what: 'The canary',
    remove: () => removeVariants(context),
    unharmed: `${stableNames(context)} untouched.`,
  });
  if (!ok) return undefined;
  return settings.dryRun ? undefined : target;
}

/**
 * Rolls each `<name>` to the new pod template with today's apply, watch and rollback, then
 * deletes the canary and baseline. Refuses when a canary is missing, or runs other images
 * than the manifests give now: promote must roll out what the canary ran.
 */
export async function promoteCanary(context: Context): Promise<void> {
  const { settings, client, rendered, bundlePath, result } = context;
  await judgedVersions(context, 'canary');
  const phase = await deploy(settings, client, rendered, bundlePath, context.logger);
  result.phases.push({ title: 'Stable version', deploy: phase, stable: true });
  if (phase.rollout?.failure) {
    result.failure =
      `${failureMessage(phase)} The canary and baseline are left: run action reject to ` +
      'remove them, or promote again.';
    return;
  }
  await removeVariants(context);
  result.outcome = 'promoted';
}

/** Deletes every canary and baseline; `<name>` is untouched. */
export async function rejectCanary(context: Context): Promise<void> {
  const removed = await removeVariants(context);
  if (removed.length === 0) {
    throw new ConfigurationError(
      `Nothing to reject: no canary or baseline of ${stableNames(context)} in namespace ` +
        `'${context.result.namespace}'.`,
    );
  }
  context.result.outcome = 'rejected';
}

async function removeVariants(context: Context): Promise<string[]> {
  const { client, rendered, logger, result } = context;
  const info = await deploymentInfo(client);
  const removed: string[] = [];
  for (const { object } of deploymentsOf(rendered, 'canary')) {
    const name = object.metadata.name!;
    removed.push(
      ...(await deleteAll(
        client,
        info,
        namespaceOf(object, rendered),
        [variantName(name, 'canary'), variantName(name, 'baseline')],
        logger,
      )),
    );
  }
  result.removed.push(...removed);
  return removed;
}

function stableNames(context: Context): string {
  return deploymentsOf(context.rendered, 'canary')
    .map(({ object }) => `Deployment/${object.metadata.name}`)
    .join(', ');
}

function hasPorts(deployment: KubeObject): boolean {
  const containers =
    (deployment.spec as { template?: { spec?: { containers?: Array<{ ports?: unknown[] }> } } })
      ?.template?.spec?.containers ?? [];
  return containers.some((container) => (container.ports ?? []).length > 0);
}
