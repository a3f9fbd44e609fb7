import { ConfigurationError } from '../../common/errors';
import type { Logger } from '../../common/logger';
import type { AnalysisResult } from '../analysis/verdict';
import { deploy, type DeployResult } from '../deploy';
import type { DeploySettings, StrategyAction } from '../inputs';
import { isWorkload } from '../kinds';
import type { KubeClient, ResourceInfo } from '../kube/client';
import type { RolloutFailure, WorkloadRef } from '../kube/rollout';
import { rolloutFailureText } from '../report';
import { templateImages, variantName } from './variants';
import { describeSource, type KubeObject } from '../manifests';
import type { Rendered, RenderedObject } from '../render';

/** One apply-and-wait of a progressive action, e.g. the canary's, then the stable's on promote. */
export interface Phase {
  title: string;
  deploy: DeployResult;
  /** This phase rolled the stable Deployments themselves (promote), not a new version beside them. */
  stable: boolean;
}

/** A Deployment of the manifests, its new version, and what it is compared with. */
export interface VersionPair {
  workload: string;
  /** `<name>-canary` or `<name>-green`. */
  candidate: string;
  /** `<name>-baseline` for a canary, `<name>` for blue-green; absent on a first deploy. */
  stable?: string;
  replicas: number;
}

/** What a canary or blue-green action did, for outputs and the job summary. */
export interface ProgressiveResult {
  strategy: 'canary' | 'blue-green';
  action: StrategyAction;
  namespace: string;
  phases: Phase[];
  pairs: VersionPair[];
  /** Objects deleted, `Kind/name`. */
  removed: string[];
  /** Services whose selector was switched, and the version they select now. */
  routed: Array<{ service: string; to: string }>;
  analysis?: AnalysisResult;
  /** promoted or rejected, by this action or by auto-promote. */
  outcome?: 'promoted' | 'rejected';
  /** Why the step fails, when it does. */
  failure?: string;
}

export interface Context {
  settings: DeploySettings;
  client: KubeClient;
  rendered: Rendered;
  bundlePath: string;
  logger: Logger;
  result: ProgressiveResult;
}

/**
 * The Deployments the strategy works on. StatefulSets and DaemonSets cannot stand beside a
 * copy of themselves (their pods have fixed names or one per node), so they are refused.
 */
export function deploymentsOf(rendered: Rendered, strategy: string): RenderedObject[] {
  const others = rendered.objects.filter(
    ({ object }) =>
      isWorkload(object.kind) && object.kind !== 'Deployment' && object.kind !== 'Job',
  );
  if (others.length > 0) {
    const { object, source } = others[0];
    throw new ConfigurationError(
      `${describeSource(source)} ${object.kind}/${object.metadata.name}: strategy ${strategy} ` +
        `runs a second version of Deployments only. Deploy ${object.kind}s with strategy basic, ` +
        `from their own manifests.`,
    );
  }
  const deployments = rendered.objects.filter(({ object }) => object.kind === 'Deployment');
  if (deployments.length === 0) {
    throw new ConfigurationError(
      `Strategy ${strategy} needs a Deployment in the manifests: it runs the new version of each ` +
        `Deployment beside the stable one. The manifests hold none.`,
    );
  }
  return deployments;
}

export async function deploymentInfo(client: KubeClient): Promise<ResourceInfo> {
  const info = await client.resource('apps/v1', 'Deployment');
  if (!info) throw new Error('The API server does not serve apps/v1 Deployments.');
  return info;
}

/** Deletes what exists of `names`; returns `Kind/name` of those deleted. */
export async function deleteAll(
  client: KubeClient,
  info: ResourceInfo,
  namespace: string,
  names: string[],
  logger: Logger,
): Promise<string[]> {
  const removed: string[] = [];
  for (const name of names) {
    if (await client.delete(info, namespace, name)) {
      logger.info(`${info.kind}/${name} deleted`);
      removed.push(`${info.kind}/${name}`);
    }
  }
  return removed;
}

/** Ready pods (and not being deleted) matching a label selector, by name. */
export async function readyPods(
  client: KubeClient,
  namespace: string,
  selector: string,
): Promise<string[]> {
  const info = await client.resource('v1', 'Pod');
  if (!info) throw new Error('The API server does not serve v1 Pods.');
  const { items } = await client.list(info, namespace, { labelSelector: selector });
  return items
    .filter(
      (pod: KubeObject) =>
        !pod.metadata.deletionTimestamp &&
        (
          (pod.status as { conditions?: Array<{ type: string; status: string }> } | undefined)
            ?.conditions ?? []
        ).some((c) => c.type === 'Ready' && c.status === 'True'),
    )
    .map((pod) => pod.metadata.name!)
    .sort();
}

/** The namespace a rendered object lives in. */
export const namespaceOf = (object: KubeObject, rendered: Rendered): string =>
  object.metadata.namespace ?? rendered.namespace;

/**
 * The new version's Deployments (`<name>-canary` or `<name>-green`) an earlier deploy left, one
 * per Deployment of the manifests. Refuses when one is missing, or runs other images than the
 * manifests give with this run's `images`: promote rolls out what was judged, nothing else.
 */
export async function judgedVersions(
  context: Context,
  role: 'canary' | 'green',
): Promise<WorkloadRef[]> {
  const { client, rendered, result } = context;
  const info = await deploymentInfo(client);
  const refs: WorkloadRef[] = [];
  const missing: string[] = [];
  for (const { object } of deploymentsOf(rendered, result.strategy)) {
    const name = variantName(object.metadata.name!, role);
    const namespace = namespaceOf(object, rendered);
    const live = await client.get(info, namespace, name);
    if (!live) {
      missing.push(`Deployment/${name}`);
      continue;
    }
    const running = templateImages(live).join(', ');
    const wanted = templateImages(object).join(', ');
    if (running !== wanted) {
      throw new ConfigurationError(
        `Deployment/${name} runs ${running}, but the manifests with this run's images give ` +
          `${wanted}: promote would roll out something other than what the ${role} ran. Pass ` +
          `the same images as the deploy did, or deploy the ${role} again.`,
      );
    }
    refs.push({ info, kind: 'Deployment', name, namespace });
  }
  if (missing.length > 0) {
    throw new ConfigurationError(
      `Nothing to promote: ${missing.join(', ')} not found in namespace '${result.namespace}'. ` +
        `Run action deploy with strategy ${result.strategy} first (a rejected ${role} is gone).`,
    );
  }
  return refs;
}

/**
 * Applies the new version's objects beside the stable ones and waits for them. When they do not
 * come up they are removed (the stable version never changed), or left when
 * rollback-on-failure is off, and the step fails saying which. True when they came up.
 */
export async function deployNewVersion(
  context: Context,
  objects: RenderedObject[],
  title: string,
  onFailure: { what: string; remove: () => Promise<string[]>; unharmed: string },
): Promise<boolean> {
  const { settings, client, rendered, bundlePath, logger, result } = context;
  const phase = await deploy(
    { ...settings, rollbackOnFailure: false },
    client,
    { ...rendered, objects },
    bundlePath,
    logger,
  );
  result.phases.push({ title, deploy: phase, stable: false });
  const failure = phase.rollout?.failure;
  if (!failure) return true;
  await newVersionFailed(context, failure, onFailure.what, onFailure.remove, onFailure.unharmed);
  return false;
}

async function newVersionFailed(
  context: Context,
  failure: RolloutFailure,
  what: string,
  remove: () => Promise<string[]>,
  unharmed: string,
): Promise<void> {
  let message = `${what} did not come up. ${rolloutFailureText(failure)}`;
  if (context.settings.rollbackOnFailure) {
    const removed = await remove();
    message += ` Removed ${removed.join(', ') || 'nothing'}; ${unharmed}`;
  } else {
    message += ' It is left in place (rollback-on-failure: false): run action reject to remove it.';
  }
  context.result.failure = message;
}
