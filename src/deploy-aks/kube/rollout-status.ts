import type { KubeObject } from '../manifests';
import type { WorkloadKind } from '../kinds';

/** Container waiting reasons that do not fix themselves: the rollout is failing. */
export const FAILING_REASONS = new Set([
  'ImagePullBackOff',
  'ErrImagePull',
  'CrashLoopBackOff',
  'CreateContainerConfigError',
  'InvalidImageName',
  'CreateContainerError',
  'RunContainerError',
]);

/**
 * What a pull error says when no retry can fix it: the image, tag or repository does not
 * exist, or the kubelet may not read it. Other pull errors (a registry's 429 or 503, a
 * timeout, a reset) pass with the kubelet's next attempt.
 */
const FINAL_PULL_ERROR =
  /not found|manifest unknown|name unknown|repository does not exist|pull access denied|unauthorized|authentication required|forbidden|access denied|insufficient_scope/i;

/**
 * Whether a failing container cannot recover by itself, so the rollout fails at once rather
 * than after the grace: a pull error that says the image or access does not exist, an invalid
 * image name, a crash loop, a container the runtime could not create or start. A transient
 * pull error, or a missing Secret or ConfigMap (CreateContainerConfigError, often applied a
 * moment later), waits out the grace.
 */
export function isFinalProblem(problem: PodProblem): boolean {
  if (problem.reason === 'ErrImagePull' || problem.reason === 'ImagePullBackOff') {
    return FINAL_PULL_ERROR.test(problem.message);
  }
  return problem.reason !== 'CreateContainerConfigError';
}

export interface PodProblem {
  pod: string;
  container: string;
  reason: string;
  message: string;
  /** True when the container has run and died (its previous log is the useful one). */
  crashed: boolean;
}

export type WorkloadStatus =
  | { state: 'progressing'; message: string; pods: KubeObject[] }
  | { state: 'done'; message: string; pods: KubeObject[] }
  | { state: 'failed'; message: string; pods: KubeObject[] };

// Status fields of several kinds are read loosely; the rules below say what each means.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = Record<string, any>;

const ownedBy = (object: KubeObject, owner: KubeObject) =>
  ((object.metadata.ownerReferences as Any[] | undefined) ?? []).some(
    (reference) => reference.uid === owner.metadata.uid && reference.controller !== false,
  );

const condition = (object: KubeObject, type: string): Any | undefined =>
  ((object.status as Any | undefined)?.conditions as Any[] | undefined)?.find(
    (c) => c.type === type,
  );

function observed(object: KubeObject): boolean {
  const status = (object.status ?? {}) as Any;
  return (
    (status.observedGeneration ?? 0) >= ((object.metadata.generation as number | undefined) ?? 0)
  );
}

/**
 * The state of a Deployment's rollout, by the rules `kubectl rollout status` uses, plus the
 * pods of its newest ReplicaSet (whose failures fail the rollout without waiting for the
 * progress deadline).
 */
export function deploymentStatus(
  deployment: KubeObject,
  replicaSets: KubeObject[],
  pods: KubeObject[],
): WorkloadStatus {
  const revision = (deployment.metadata.annotations as Any | undefined)?.[
    'deployment.kubernetes.io/revision'
  ];
  const newSet = replicaSets.find(
    (set) =>
      ownedBy(set, deployment) &&
      (set.metadata.annotations as Any | undefined)?.['deployment.kubernetes.io/revision'] ===
        revision,
  );
  const newPods = newSet ? pods.filter((pod) => ownedBy(pod, newSet)) : [];
  const spec = (deployment.spec ?? {}) as Any;
  const status = (deployment.status ?? {}) as Any;
  if (!observed(deployment) || !revision) {
    return {
      state: 'progressing',
      message: 'waiting for the controller to see the new spec',
      pods: newPods,
    };
  }
  const progressing = condition(deployment, 'Progressing');
  if (progressing?.reason === 'ProgressDeadlineExceeded') {
    return {
      state: 'failed',
      message: `progress deadline exceeded: ${progressing.message ?? ''}`.trim(),
      pods: newPods,
    };
  }
  const desired = spec.replicas ?? 1;
  const updated = status.updatedReplicas ?? 0;
  const replicas = status.replicas ?? 0;
  const available = status.availableReplicas ?? 0;
  if (updated < desired) {
    return {
      state: 'progressing',
      message: `${updated} of ${desired} replicas updated`,
      pods: newPods,
    };
  }
  if (replicas > updated) {
    return {
      state: 'progressing',
      message: `${replicas - updated} old replicas pending termination`,
      pods: newPods,
    };
  }
  if (available < updated) {
    return {
      state: 'progressing',
      message: `${available} of ${updated} updated replicas available`,
      pods: newPods,
    };
  }
  return {
    state: 'done',
    message: `${available} of ${desired} replicas available (revision ${revision})`,
    pods: newPods,
  };
}

export function statefulSetStatus(set: KubeObject, pods: KubeObject[]): WorkloadStatus {
  const spec = (set.spec ?? {}) as Any;
  const status = (set.status ?? {}) as Any;
  const newPods = pods.filter(
    (pod) =>
      ownedBy(pod, set) &&
      (pod.metadata.labels as Any | undefined)?.['controller-revision-hash'] ===
        status.updateRevision,
  );
  if (!observed(set) || !status.updateRevision) {
    return {
      state: 'progressing',
      message: 'waiting for the controller to see the new spec',
      pods: newPods,
    };
  }
  const desired = spec.replicas ?? 1;
  if ((status.readyReplicas ?? 0) < desired) {
    return {
      state: 'progressing',
      message: `${status.readyReplicas ?? 0} of ${desired} pods ready`,
      pods: newPods,
    };
  }
  if (spec.updateStrategy?.type !== 'OnDelete' && (status.updatedReplicas ?? 0) < desired) {
    return {
      state: 'progressing',
      message: `${status.updatedReplicas ?? 0} of ${desired} pods updated`,
      pods: newPods,
    };
  }
  if (
    spec.updateStrategy?.type !== 'OnDelete' &&
    status.currentRevision !== status.updateRevision
  ) {
    return { state: 'progressing', message: 'waiting for the update to finish', pods: newPods };
  }
  return { state: 'done', message: `${desired} of ${desired} pods ready`, pods: newPods };
}

export function daemonSetStatus(set: KubeObject, pods: KubeObject[]): WorkloadStatus {
  const status = (set.status ?? {}) as Any;
  const generation = String(set.metadata.generation ?? '');
  const newPods = pods.filter(
    (pod) =>
      ownedBy(pod, set) &&
      (pod.metadata.labels as Any | undefined)?.['pod-template-generation'] === generation,
  );
  if (!observed(set)) {
    return {
      state: 'progressing',
      message: 'waiting for the controller to see the new spec',
      pods: newPods,
    };
  }
  const desired = status.desiredNumberScheduled ?? 0;
  if ((status.updatedNumberScheduled ?? 0) < desired) {
    return {
      state: 'progressing',
      message: `${status.updatedNumberScheduled ?? 0} of ${desired} pods updated`,
      pods: newPods,
    };
  }
  if ((status.numberAvailable ?? 0) < desired) {
    return {
      state: 'progressing',
      message: `${status.numberAvailable ?? 0} of ${desired} updated pods available`,
      pods: newPods,
    };
  }
  return { state: 'done', message: `${desired} of ${desired} pods available`, pods: newPods };
}

export function jobStatus(job: KubeObject, pods: KubeObject[]): WorkloadStatus {
  const ownPods = pods.filter((pod) => ownedBy(pod, job));
  const failed = condition(job, 'Failed');
  if (failed?.status === 'True') {
    return {
      state: 'failed',
      message: `job failed: ${failed.reason ?? ''} ${failed.message ?? ''}`.trim(),
      pods: ownPods,
    };
  }
  const complete = condition(job, 'Complete');
  if (complete?.status === 'True') {
    return {
      state: 'done',
      message: `completed (${(job.status as Any).succeeded ?? 0} succeeded)`,
      pods: ownPods,
    };
  }
  return {
    state: 'progressing',
    message: `${(job.status as Any | undefined)?.active ?? 0} pods active`,
    pods: ownPods,
  };
}

export function workloadStatus(
  kind: WorkloadKind,
  object: KubeObject,
  replicaSets: KubeObject[],
  pods: KubeObject[],
): WorkloadStatus {
  switch (kind) {
    case 'Deployment':
      return deploymentStatus(object, replicaSets, pods);
    case 'StatefulSet':
      return statefulSetStatus(object, pods);
    case 'DaemonSet':
      return daemonSetStatus(object, pods);
    case 'Job':
      return jobStatus(object, pods);
  }
}

/** The first container (init containers first) of a pod stuck for a reason that will not fix itself. */
export function podProblem(pod: KubeObject): PodProblem | undefined {
  const status = (pod.status ?? {}) as Any;
  for (const container of [
    ...(status.initContainerStatuses ?? []),
    ...(status.containerStatuses ?? []),
  ] as Any[]) {
    const waiting = container.state?.waiting;
    if (waiting && FAILING_REASONS.has(waiting.reason)) {
      const last = container.lastState?.terminated;
      const lastExit = last
        ? ` (last exit code ${last.exitCode}${last.reason ? `, ${last.reason}` : ''})`
        : '';
      return {
        pod: pod.metadata.name!,
        container: container.name,
        reason: waiting.reason,
        message: `${waiting.message ?? ''}${lastExit}`.trim(),
        crashed: Boolean(last) || (container.restartCount ?? 0) > 0,
      };
    }
  }
  return undefined;
}

/** Why a pod is not ready yet, for timeout messages: unschedulable, waiting reason, or phase. */
export function podWaitingReason(pod: KubeObject): string {
  const status = (pod.status ?? {}) as Any;
  const scheduled = (status.conditions as Any[] | undefined)?.find(
    (c) => c.type === 'PodScheduled',
  );
  if (scheduled?.status === 'False')
    return `${scheduled.reason ?? 'not scheduled'}: ${scheduled.message ?? ''}`.trim();
  for (const container of [
    ...(status.initContainerStatuses ?? []),
    ...(status.containerStatuses ?? []),
  ] as Any[]) {
    const waiting = container.state?.waiting;
    if (waiting)
      return `${container.name} ${waiting.reason ?? 'waiting'}${waiting.message ? `: ${waiting.message}` : ''}`;
    if (container.state?.running && !container.ready) return `${container.name} running, not ready`;
  }
  return status.phase ?? 'Pending';
}
