import { ConfigurationError } from '../../common/errors';
import { deploy } from '../deploy';
import { FIELD_MANAGER } from '../kube/apply';
import type { KubeClient } from '../kube/client';
import { waitForRollout, type WorkloadRef } from '../kube/rollout';
import type { KubeObject } from '../manifests';
import type { RenderedObject } from '../render';
import { failureMessage, rolloutFailureText } from '../report';
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
import {
  COLOR_LABEL,
  GREEN,
  STABLE_COLOR,
  podSelector,
  selects,
  variantName,
  variantOf,
  withPodLabel,
} from './variants';

type Selector = Record<string, string>;
const selectorOf = (object: KubeObject): Selector | undefined =>
  (object.spec as { selector?: Selector } | undefined)?.selector;
const podLabelsOf = (object: KubeObject): Selector | undefined =>
  (object.spec as { template?: { metadata?: { labels?: Selector } } } | undefined)?.template
    ?.metadata?.labels;

/**
 * Blue-green by Service routing, named as Azure/k8s-deploy names it: `deploy` runs
 * `<name>-green` beside the live `<name>` without moving traffic (the Services select
 * `k8s.deploy.color: None`, which only the stable pods carry); `promote` points the Services
 * at green, rolls `<name>` to the new template while green serves, points them back and
 * deletes green; `reject` points them back (if they moved) and deletes green.
 */
export async function deployGreen(context: Context): Promise<AnalysisTarget | undefined> {
  const { settings, client, rendered, result } = context;
  const deployments = deploymentsOf(rendered, 'blue-green');
  const info = await deploymentInfo(client);
  const greens = new Map<string, KubeObject>();
  let target: AnalysisTarget | undefined;
  for (const { object } of deployments) {
    const name = object.metadata.name!;
    const namespace = namespaceOf(object, rendered);
    const live = await client.get(info, namespace, name);
    if (live && podLabelsOf(live)?.[COLOR_LABEL] !== STABLE_COLOR && !settings.dryRun) {
      await labelStablePods(context, { info, kind: 'Deployment', name, namespace });
    }
    const green = variantOf(object, GREEN, undefined, 'blue-green');
    greens.set(name, green);
    result.pairs.push({
      workload: name,
      candidate: green.metadata.name!,
      stable: live ? name : undefined,
      replicas: (green.spec as { replicas?: number }).replicas ?? 1,
    });
    target ??= {
      candidate: green,
      candidateSelector: podSelector(green),
      stableSelector: live ? podSelector(object, { [COLOR_LABEL]: STABLE_COLOR }) : undefined,
    };
  }
  const objects = rendered.objects.map((entry) => {
    if (entry.object.kind === 'Deployment')
      return { ...entry, object: greens.get(entry.object.metadata.name!)! };
    return routedTo(entry, deployments, STABLE_COLOR);
  });
  const ok = await deployNewVersion(context, objects, 'Green', {
    what: 'The green version',
    remove: () => removeGreens(context),
    unharmed: 'traffic never left the stable version.',
  });
  if (!ok) return undefined;
  return settings.dryRun ? undefined : target;
}

export async function promoteGreen(context: Context): Promise<void> {
  const { settings, client, rendered, bundlePath, logger, result } = context;
  const deployments = deploymentsOf(rendered, 'blue-green');
  const refs = await judgedVersions(context, GREEN);
  const ready = await logger.group('Checking that green is ready', () =>
    waitForRollout(
      client,
      refs,
      { deadline: Date.now() + settings.timeoutMs, graceMs: settings.failureGraceMs, logLines: 20 },
      logger,
    ),
  );
  if (ready.failure) {
    throw new Error(
      `Green is not ready, so traffic stays where it is. ${rolloutFailureText(ready.failure)}`,
    );
  }
  await logger.group('Routing the Services to green', () => route(context, GREEN));
  const objects = rendered.objects.map((entry) =>
    entry.object.kind === 'Deployment'
      ? {
          ...entry,
          object: {
            ...entry.object,
            spec: {
              ...(entry.object.spec as object),
              template: withPodLabel(
                (entry.object.spec as { template?: object }).template,
                COLOR_LABEL,
                STABLE_COLOR,
              ),
            },
          },
        }
      : routedTo(entry, deployments, GREEN),
  );
  const phase = await deploy(settings, client, { ...rendered, objects }, bundlePath, logger);
  result.phases.push({
    title: 'Stable version, while green serves',
    deploy: phase,
    stable: true,
  });
  await logger.group('Routing the Services back to the stable version', () =>
    route(context, STABLE_COLOR),
  );
  if (phase.rollout?.failure) {
    result.failure =
      `${failureMessage(phase)} Traffic is back on the stable version; ` +
      `${refs.map((ref) => `Deployment/${ref.name}`).join(', ')} left: run action reject to remove it, or promote again.`;
    return;
  }
  await removeGreens(context);
  result.outcome = 'promoted';
}

export async function rejectGreen(context: Context): Promise<void> {
  const moved = await route(context, STABLE_COLOR);
  const removed = await removeGreens(context);
  if (removed.length === 0 && moved === 0) {
    throw new ConfigurationError(
      `Nothing to reject: no green version of ${deploymentsOf(context.rendered, 'blue-green')
        .map(({ object }) => `Deployment/${object.metadata.name}`)
        .join(', ')} in namespace '${context.result.namespace}'.`,
    );
  }
  context.result.outcome = 'rejected';
}

/**
 * Adds `k8s.deploy.color: None` to a live Deployment's pod labels (not its selector, which
 * cannot change) and waits for the rolling restart it causes, so that Services can select
 * the stable pods apart from green ones. Done once, the first time blue-green meets it.
 */
async function labelStablePods(context: Context, ref: WorkloadRef): Promise<void> {
  const { client, settings, logger } = context;
  await logger.group(
    `Labelling the pods of Deployment/${ref.name} as the stable version`,
    async () => {
      logger.info(
        `Services will select ${COLOR_LABEL}=${STABLE_COLOR}; the pods get the label through a rolling update (once, no downtime).`,
      );
      await client.jsonPatch(
        ref.info,
        ref.namespace,
        ref.name,
        [
          {
            op: 'add',
            path: `/spec/template/metadata/labels/${COLOR_LABEL.replace(/~/g, '~0').replace(/\//g, '~1')}`,
            value: STABLE_COLOR,
          },
        ],
        FIELD_MANAGER,
      );
      const rollout = await waitForRollout(
        client,
        [ref],
        {
          deadline: Date.now() + settings.timeoutMs,
          graceMs: settings.failureGraceMs,
          logLines: 20,
        },
        logger,
      );
      if (rollout.failure) {
        throw new Error(`Labelling the stable pods failed. ${rolloutFailureText(rollout.failure)}`);
      }
    },
  );
}

/** A Service of the manifests that selects a Deployment's pods, pinned to one color. */
function routedTo(
  entry: RenderedObject,
  deployments: RenderedObject[],
  color: string,
): RenderedObject {
  const { object } = entry;
  if (object.kind !== 'Service') return entry;
  const selector = selectorOf(object);
  if (!deployments.some((d) => selects(selector, podLabelsOf(d.object)))) return entry;
  return {
    ...entry,
    object: {
      ...object,
      spec: { ...(object.spec as object), selector: { ...selector, [COLOR_LABEL]: color } },
    },
  };
}

/** Points every routed Service of the manifests at `color`; returns how many moved. */
async function route(context: Context, color: string): Promise<number> {
  const { client, rendered, logger, result } = context;
  const info = await client.resource('v1', 'Service');
  if (!info) throw new Error('The API server does not serve v1 Services.');
  const deployments = deploymentsOf(rendered, 'blue-green');
  let moved = 0;
  for (const { object } of rendered.objects) {
    if (object.kind !== 'Service') continue;
    if (!deployments.some((d) => selects(selectorOf(object), podLabelsOf(d.object)))) continue;
    const namespace = namespaceOf(object, rendered);
    const live = await client.get(info, namespace, object.metadata.name!);
    const selector = live && selectorOf(live);
    if (!selector || selector[COLOR_LABEL] === color) continue;
    await switchSelector(client, info, namespace, object.metadata.name!, selector, color);
    logger.info(`Service/${object.metadata.name} now selects ${COLOR_LABEL}=${color}`);
    result.routed.push({
      service: object.metadata.name!,
      to: color === GREEN ? 'green' : 'stable',
    });
    moved++;
  }
  return moved;
}

async function switchSelector(
  client: KubeClient,
  info: NonNullable<Awaited<ReturnType<KubeClient['resource']>>>,
  namespace: string,
  name: string,
  selector: Selector,
  color: string,
): Promise<void> {
  // The test operation makes the switch fail rather than overwrite a selector changed meanwhile.
  await client.jsonPatch(
    info,
    namespace,
    name,
    [
      { op: 'test', path: '/spec/selector', value: selector },
      { op: 'replace', path: '/spec/selector', value: { ...selector, [COLOR_LABEL]: color } },
    ],
    FIELD_MANAGER,
  );
}

async function removeGreens(context: Context): Promise<string[]> {
  const { client, rendered, logger, result } = context;
  const info = await deploymentInfo(client);
  const removed: string[] = [];
  for (const { object } of deploymentsOf(rendered, 'blue-green')) {
    removed.push(
      ...(await deleteAll(
        client,
        info,
        namespaceOf(object, rendered),
        [variantName(object.metadata.name!, GREEN)],
        logger,
      )),
    );
  }
  result.removed.push(...removed);
  return removed;
}
