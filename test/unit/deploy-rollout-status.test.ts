import { isFinalProblem } from '../../src/deploy-aks/kube/rollout-status';
import { lineDiff } from '../../src/deploy-aks/kube/diff';
import {
  daemonSetStatus,
  deploymentStatus,
  jobStatus,
  podProblem,
  podWaitingReason,
  statefulSetStatus,
} from '../../src/deploy-aks/kube/rollout-status';
import type { KubeObject } from '../../src/deploy-aks/manifests';

const object = (kind: string, name: string, rest: Record<string, unknown>): KubeObject =>
  ({
    apiVersion: 'v1',
    kind,
    ...rest,
    metadata: { name, uid: `${name}-uid`, ...(rest.metadata as object) },
  }) as KubeObject;

const owner = (uid: string) => ({ ownerReferences: [{ uid, controller: true }] });

function deployment(status: Record<string, unknown>, generation = 2, replicas = 2): KubeObject {
  return object('Deployment', 'web', {
    metadata: { generation, annotations: { 'deployment.kubernetes.io/revision': '2' } },
    spec: { replicas },
    status: { observedGeneration: 2, ...status },
  });
}

const newSet = object('ReplicaSet', 'web-new', {
  metadata: { ...owner('web-uid'), annotations: { 'deployment.kubernetes.io/revision': '2' } },
});
const oldSet = object('ReplicaSet', 'web-old', {
  metadata: { ...owner('web-uid'), annotations: { 'deployment.kubernetes.io/revision': '1' } },
});

function pod(name: string, set: string, status: Record<string, unknown>): KubeObject {
  return object('Pod', name, { metadata: owner(`${set}-uid`), status });
}

const waiting = (reason: string, message = '') => ({
  containerStatuses: [{ name: 'app', state: { waiting: { reason, message } }, restartCount: 0 }],
});

describe('Deployment rollout status', () => {
  it('waits for the controller to observe the new generation', () => {
    expect(deploymentStatus(deployment({}, 3), [], []).state).toBe('progressing');
  });

  it('is done only when updated = available = desired and no old replicas remain', () => {
    expect(
      deploymentStatus(
        deployment({ updatedReplicas: 1, replicas: 3, availableReplicas: 2 }),
        [],
        [],
      ).message,
    ).toBe('1 of 2 replicas updated');
    expect(
      deploymentStatus(
        deployment({ updatedReplicas: 2, replicas: 3, availableReplicas: 2 }),
        [],
        [],
      ).message,
    ).toBe('1 old replicas pending termination');
    expect(
      deploymentStatus(
        deployment({ updatedReplicas: 2, replicas: 2, availableReplicas: 1 }),
        [],
        [],
      ).message,
    ).toBe('1 of 2 updated replicas available');
    expect(
      deploymentStatus(
        deployment({ updatedReplicas: 2, replicas: 2, availableReplicas: 2 }),
        [],
        [],
      ).state,
    ).toBe('done');
  });

  it('fails on ProgressDeadlineExceeded', () => {
    const status = deploymentStatus(
      deployment({
        conditions: [
          {
            type: 'Progressing',
            status: 'False',
            reason: 'ProgressDeadlineExceeded',
            message: 'ReplicaSet "web-new" has timed out progressing.',
          },
        ],
      }),
      [],
      [],
    );
    expect(status).toMatchObject({
      state: 'failed',
      message: 'progress deadline exceeded: ReplicaSet "web-new" has timed out progressing.',
    });
  });

  it("hands over only the newest ReplicaSet's pods for failure checks", () => {
    const fresh = pod('web-new-a', 'web-new', waiting('ImagePullBackOff'));
    const stale = pod('web-old-a', 'web-old', { phase: 'Running' });
    const status = deploymentStatus(
      deployment({ updatedReplicas: 1 }),
      [oldSet, newSet],
      [fresh, stale],
    );
    expect(status.pods.map((p) => p.metadata.name)).toEqual(['web-new-a']);
  });
});

describe('pod problems', () => {
  it.each([
    'ImagePullBackOff',
    'ErrImagePull',
    'CrashLoopBackOff',
    'CreateContainerConfigError',
    'InvalidImageName',
  ])('treats %s as failing', (reason) => {
    expect(podProblem(pod('p', 'x', waiting(reason, 'details')))).toMatchObject({
      pod: 'p',
      container: 'app',
      reason,
      message: 'details',
    });
  });

  it('does not treat ContainerCreating or a pending pod as failing', () => {
    expect(podProblem(pod('p', 'x', waiting('ContainerCreating')))).toBeUndefined();
    expect(podProblem(pod('p', 'x', { phase: 'Pending' }))).toBeUndefined();
  });

  it('checks init containers, and reports the last exit of a crashed container', () => {
    const problem = podProblem(
      pod('p', 'x', {
        initContainerStatuses: [
          {
            name: 'warm',
            state: { waiting: { reason: 'CrashLoopBackOff', message: 'back-off 10s' } },
            lastState: { terminated: { exitCode: 1, reason: 'Error' } },
            restartCount: 2,
          },
        ],
      }),
    );
    expect(problem).toEqual({
      pod: 'p',
      container: 'warm',
      reason: 'CrashLoopBackOff',
      message: 'back-off 10s (last exit code 1, Error)',
      crashed: true,
    });
  });

  it('explains why a pod is still waiting', () => {
    expect(
      podWaitingReason(
        pod('p', 'x', {
          conditions: [
            {
              type: 'PodScheduled',
              status: 'False',
              reason: 'Unschedulable',
              message: '0/3 nodes are available',
            },
          ],
        }),
      ),
    ).toBe('Unschedulable: 0/3 nodes are available');
    expect(podWaitingReason(pod('p', 'x', waiting('ContainerCreating')))).toBe(
      'app ContainerCreating',
    );
  });
});

describe('StatefulSet, DaemonSet and Job status', () => {
  it('StatefulSet: ready, updated and on the update revision', () => {
    const set = (status: Record<string, unknown>) =>
      object('StatefulSet', 'db', {
        metadata: { generation: 1 },
        spec: { replicas: 2 },
        status: { observedGeneration: 1, updateRevision: 'db-2', ...status },
      });
    expect(statefulSetStatus(set({ readyReplicas: 1 }), []).state).toBe('progressing');
    expect(
      statefulSetStatus(set({ readyReplicas: 2, updatedReplicas: 2, currentRevision: 'db-1' }), [])
        .state,
    ).toBe('progressing');
    expect(
      statefulSetStatus(set({ readyReplicas: 2, updatedReplicas: 2, currentRevision: 'db-2' }), [])
        .state,
    ).toBe('done');
  });

  it('DaemonSet: every scheduled pod updated and available', () => {
    const set = (status: Record<string, unknown>) =>
      object('DaemonSet', 'agent', {
        metadata: { generation: 4 },
        status: { observedGeneration: 4, desiredNumberScheduled: 3, ...status },
      });
    expect(daemonSetStatus(set({ updatedNumberScheduled: 3, numberAvailable: 2 }), []).state).toBe(
      'progressing',
    );
    expect(daemonSetStatus(set({ updatedNumberScheduled: 3, numberAvailable: 3 }), []).state).toBe(
      'done',
    );
  });

  it('Job: Complete is done, Failed is failed', () => {
    const job = (conditions: unknown[]) => object('Job', 'migrate', { status: { conditions } });
    expect(jobStatus(job([]), []).state).toBe('progressing');
    expect(jobStatus(job([{ type: 'Complete', status: 'True' }]), []).state).toBe('done');
    expect(
      jobStatus(job([{ type: 'Failed', status: 'True', reason: 'BackoffLimitExceeded' }]), [])
        .message,
    ).toBe('job failed: BackoffLimitExceeded');
  });
});

describe('line diff', () => {
  it('shows changed lines with context, and nothing for equal text', () => {
    const before = 'a\nb\nc\nd\ne\nf\ng\n';
    const after = 'a\nb\nc\nD\ne\nf\ng\n';
    expect(lineDiff(before, after, 1)).toBe('@@ -3,3 +3,3 @@\n c\n-d\n+D\n e');
    expect(lineDiff(before, before, 3)).toBe('');
    expect(lineDiff('', 'x\n', 3)).toBe('@@ -0,0 +1,1 @@\n+x');
  });

  it('stays fast on a large object with changes far apart', () => {
    // 20 000 lines each side: an O(n·m) table would need 400 million cells.
    const lines = Array.from({ length: 20_000 }, (_, i) => `  key${i}: value${i}`);
    const changed = [...lines];
    changed[10] = '  key10: changed';
    changed[19_990] = '  key19990: changed';
    const diff = lineDiff(lines.join('\n'), changed.join('\n'), 1);
    expect(diff.split('\n').filter((line) => line.startsWith('@@'))).toHaveLength(2);
    expect(diff).toContain('+  key19990: changed');
  });
});

describe('which pod failures cannot pass by themselves', () => {
  const problem = (reason: string, message: string) => ({
    pod: 'p',
    container: 'c',
    reason,
    message,
    crashed: false,
  });
  it.each([
    'failed to pull and unpack image "r.io/a:1": failed to resolve reference "r.io/a:1": r.io/a:1: not found',
    'rpc error: code = Unknown desc = Error response from daemon: manifest unknown',
    'pull access denied for r.io/a, repository does not exist or may require authorization',
    'failed to authorize: failed to fetch oauth token: unexpected status: 401 Unauthorized',
  ])('a pull error that says the image or access does not exist: %s', (message) => {
    expect(isFinalProblem(problem('ErrImagePull', message))).toBe(true);
  });
  it.each([
    'unexpected status code https://r.io/v2/a/blobs/sha256:0: 429 Too Many Requests',
    'dial tcp 10.0.0.4:443: i/o timeout',
    'Back-off pulling image "r.io/a:1"',
  ])('a pull error that another pull can fix: %s', (message) => {
    expect(isFinalProblem(problem('ErrImagePull', message))).toBe(false);
  });
  it('crash loops and invalid names are final; a missing Secret may appear', () => {
    expect(isFinalProblem(problem('CrashLoopBackOff', 'back-off 10s'))).toBe(true);
    expect(isFinalProblem(problem('InvalidImageName', 'invalid reference format'))).toBe(true);
    expect(
      isFinalProblem(problem('CreateContainerConfigError', 'secret "model-credentials" not found')),
    ).toBe(false);
  });
});
