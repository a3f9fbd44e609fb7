import type { Logger } from '../../common/logger';
import type { WorkloadKind } from '../kinds';
import type { KubeObject } from '../manifests';
import type { KubeClient, ResourceInfo } from './client';
import { Informer } from './informer';
import {
  isFinalProblem,
  podProblem,
  podWaitingReason,
  workloadStatus,
  type PodProblem,
  type WorkloadStatus,
} from './rollout-status';

export interface WorkloadRef {
  info: ResourceInfo;
  kind: WorkloadKind;
  name: string;
  namespace: string;
}

export interface WorkloadOutcome {
  ref: WorkloadRef;
  state: WorkloadStatus['state'];
  message: string;
  /** From the start of the wait until this workload was done. */
  milliseconds?: number;
  /** deployment.kubernetes.io/revision, for Deployments. */
  revision?: string;
}

export interface RolloutFailure {
  ref: WorkloadRef;
  message: string;
  problem?: PodProblem;
  /** Last log lines of the failing container. */
  logs?: string;
  timedOut: boolean;
}

export interface RolloutResult {
  workloads: WorkloadOutcome[];
  failure?: RolloutFailure;
  milliseconds: number;
}

export interface RolloutOptions {
  /** When the wait gives up, as a Date.now() value. */
  deadline: number;
  /** How long a pod may show a failing reason before the rollout counts as failed. */
  graceMs: number;
  /** Log lines of a failing container to report. */
  logLines: number;
}

const keyOf = (ref: { kind: string; namespace: string; name: string }) =>
  `${ref.kind}/${ref.namespace}/${ref.name}`;

/**
 * Waits for every workload at once by watching them, their ReplicaSets and their pods (one
 * list-then-watch per kind and namespace), re-evaluating on each event. Ends as soon as all
 * are done, one fails (a failing pod reason that outlasts the grace, a progress deadline, a
 * failed Job), or the deadline passes.
 */
export async function waitForRollout(
  client: KubeClient,
  refs: WorkloadRef[],
  options: RolloutOptions,
  logger: Logger,
): Promise<RolloutResult> {
  const started = Date.now();
  if (refs.length === 0) return { workloads: [], milliseconds: 0 };
  const abort = new AbortController();
  const informers = new Map<string, Informer>();
  const doneAt = new Map<string, number>();
  const firstFailingSeen = new Map<string, number>();
  /** Containers whose pull error said the image or access does not exist, and that message. */
  const finalPullErrors = new Map<string, string>();
  const lastMessage = new Map<string, string>();
  let timer: NodeJS.Timeout | undefined;

  const result = await new Promise<RolloutResult | Error>((resolve) => {
    let settled = false;
    let ready = false;
    const finish = (value: RolloutResult | Error) => {
      if (settled) return;
      settled = true;
      resolve(value);
    };
    const evaluate = () => {
      if (settled || !ready) return;
      const now = Date.now();
      const outcomes: WorkloadOutcome[] = [];
      let failure: RolloutFailure | undefined;
      let nextCheck = options.deadline;
      for (const ref of refs) {
        const own = informers.get(`${ref.kind}/${ref.namespace}`)?.objects.get(ref.name);
        const replicaSets = [
          ...(informers.get(`ReplicaSet/${ref.namespace}`)?.objects.values() ?? []),
        ];
        const pods = [...(informers.get(`Pod/${ref.namespace}`)?.objects.values() ?? [])];
        const status: WorkloadStatus = own
          ? workloadStatus(ref.kind, own, replicaSets, pods)
          : { state: 'progressing', message: 'not found yet', pods: [] };
        const key = keyOf(ref);
        if (status.state === 'done' && !doneAt.has(key)) {
          doneAt.set(key, now - started);
          logger.info(`${ref.kind}/${ref.name}: ${status.message}`);
        } else if (status.state !== 'done' && lastMessage.get(key) !== status.message) {
          logger.info(`${ref.kind}/${ref.name}: ${status.message}`);
        }
        lastMessage.set(key, status.message);
        const revision = (own?.metadata.annotations as Record<string, string> | undefined)?.[
          'deployment.kubernetes.io/revision'
        ];
        outcomes.push({
          ref,
          state: status.state,
          message: status.message,
          milliseconds: doneAt.get(key),
          revision,
        });
        if (status.state === 'failed') {
          failure ??= { ref, message: status.message, timedOut: false };
          continue;
        }
        if (status.state === 'done') continue;
        for (const pod of status.pods) {
          const problem = podProblem(pod);
          if (!problem) continue;
          const problemKey = `${pod.metadata.uid}/${problem.container}`;
          const since = firstFailingSeen.get(problemKey) ?? now;
          firstFailingSeen.set(problemKey, since);
          // ImagePullBackOff says only "Back-off pulling image": the ErrImagePull before it
          // said why, and whether another pull can succeed.
          if (problem.reason === 'ErrImagePull' && isFinalProblem(problem)) {
            finalPullErrors.set(problemKey, problem.message);
          }
          const pullError = finalPullErrors.get(problemKey);
          const final = pullError !== undefined || isFinalProblem(problem);
          if (final || now - since >= options.graceMs) {
            const message =
              pullError && pullError !== problem.message ? pullError : problem.message;
            failure ??= {
              ref,
              message: `pod ${problem.pod} container ${problem.container}: ${problem.reason}${message ? `: ${message}` : ''}`,
              problem,
              timedOut: false,
            };
          } else {
            nextCheck = Math.min(nextCheck, since + options.graceMs);
          }
        }
      }
      if (failure) return finish({ workloads: outcomes, failure, milliseconds: now - started });
      if (outcomes.every((outcome) => outcome.state === 'done')) {
        return finish({ workloads: outcomes, milliseconds: now - started });
      }
      if (now >= options.deadline) {
        const pending = outcomes.filter((outcome) => outcome.state !== 'done');
        const first = pending[0];
        const pods = podsOf(informers, first.ref);
        const waiting = pods
          .map((pod) => `${pod.metadata.name}: ${podWaitingReason(pod)}`)
          .slice(0, 3);
        return finish({
          workloads: outcomes,
          failure: {
            ref: first.ref,
            message:
              `timed out: ${pending.map((o) => `${o.ref.kind}/${o.ref.name} (${o.message})`).join(', ')}` +
              (waiting.length ? `; pods: ${waiting.join('; ')}` : ''),
            timedOut: true,
          },
          milliseconds: now - started,
        });
      }
      if (timer) clearTimeout(timer);
      timer = setTimeout(evaluate, Math.max(10, nextCheck - now));
    };

    const watched = new Map<string, ResourceInfo>();
    for (const ref of refs) {
      watched.set(`${ref.kind}/${ref.namespace}`, ref.info);
    }
    const namespaces = [...new Set(refs.map((ref) => ref.namespace))];
    const extra = async () => {
      const pod = await client.resource('v1', 'Pod');
      const replicaSet = await client.resource('apps/v1', 'ReplicaSet');
      for (const namespace of namespaces) {
        if (pod) watched.set(`Pod/${namespace}`, pod);
        if (
          replicaSet &&
          refs.some((ref) => ref.kind === 'Deployment' && ref.namespace === namespace)
        ) {
          watched.set(`ReplicaSet/${namespace}`, replicaSet);
        }
      }
    };
    extra()
      .then(async () => {
        const started = [...watched].map(([key, info]) => {
          const informer = new Informer(
            client,
            info,
            key.slice(key.indexOf('/') + 1),
            evaluate,
            abort.signal,
            logger,
            (error) => finish(error as Error),
          );
          informers.set(key, informer);
          return informer.ready;
        });
        await Promise.all(started);
        ready = true;
        evaluate();
      })
      .catch((error: unknown) => finish(error as Error));
  });

  if (timer) clearTimeout(timer);
  abort.abort();
  await Promise.all([...informers.values()].map((informer) => informer.finished()));
  if (result instanceof Error) throw result;
  // Only a container that has run has logs; after a crash, the previous one's are the useful ones.
  if (result.failure?.problem?.crashed) {
    const { problem } = result.failure;
    result.failure.logs = await client.logs(
      result.failure.ref.namespace,
      problem.pod,
      problem.container,
      options.logLines,
      problem.crashed,
    );
  }
  return result;
}

function podsOf(informers: Map<string, Informer>, ref: WorkloadRef): KubeObject[] {
  const own = informers.get(`${ref.kind}/${ref.namespace}`)?.objects.get(ref.name);
  const replicaSets = [...(informers.get(`ReplicaSet/${ref.namespace}`)?.objects.values() ?? [])];
  const pods = [...(informers.get(`Pod/${ref.namespace}`)?.objects.values() ?? [])];
  return own ? workloadStatus(ref.kind, own, replicaSets, pods).pods : [];
}
