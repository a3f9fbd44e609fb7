/**
 * Benchmark of action-deploy-aks against the Kubernetes API server double, whose pods become
 * ready after a set delay, in one run with a peer: the real kubectl doing what the usual
 * workflow does (`kubectl apply --server-side -f DIR`, then `kubectl rollout status` for each
 * Deployment, one after another). Two measurements:
 *
 * - overhead: wall time of a successful rollout of BENCH_RESOURCES objects minus the
 *   simulated rollout time (the pods' ready delay), for the action (bundle run as the runner
 *   runs it, signing in through the OIDC, Entra and ARM doubles) and for kubectl (admin
 *   kubeconfig, no sign-in);
 * - failure detection: from the first pod showing ErrImagePull to the step's exit, for the
 *   action (then also rolled back) and for `kubectl rollout status`, which only fails at the
 *   Deployment's progress deadline (BENCH_PEER_DEADLINE_S here; 600 s by default in
 *   Kubernetes).
 *
 * Prints a Markdown report and writes it to bench/results/deploy.md. Run with
 * `npm run bench:deploy`. Environment: BENCH_RESOURCES (10), BENCH_READY_MS (3000),
 * BENCH_RUNS (3), BENCH_PEER_DEADLINE_S (20).
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { DeployStack } from '../test/support/deploy-stack';
import { errorLines, REPO_ROOT, runAction } from '../test/support/run-action';

const exec = promisify(execFile);
const RESULTS = path.join(__dirname, 'results', 'deploy.md');
const REGISTRY = 'registry.local:5000';

interface Config {
  resources: number;
  readyMs: number;
  runs: number;
  peerDeadlineSeconds: number;
}

function readConfig(env = process.env): Config {
  const int = (name: string, fallback: number) => {
    const value = env[name] ? Number(env[name]) : fallback;
    if (!Number.isInteger(value) || value < 1)
      throw new Error(`${name} must be a positive integer`);
    return value;
  };
  return {
    resources: Math.max(4, int('BENCH_RESOURCES', 10)),
    readyMs: int('BENCH_READY_MS', 3000),
    runs: int('BENCH_RUNS', 3),
    peerDeadlineSeconds: int('BENCH_PEER_DEADLINE_S', 20),
  };
}

const digest = (seed: string) =>
  `sha256:${Buffer.from(seed).toString('hex').padEnd(64, '0').slice(0, 64)}`;

/**
 * N objects in the shape of an app: config maps and a secret, services, and Deployments
 * (about 4 in 10). Every Deployment runs `image`.
 */
function manifests(count: number, image: string, progressDeadlineSeconds?: number): string {
  const deployments = Math.max(1, Math.round(count * 0.4));
  const services = Math.max(1, Math.round(count * 0.3));
  const configs = count - deployments - services;
  const docs: string[] = [];
  for (let i = 0; i < configs; i++) {
    docs.push(
      i === 0
        ? `apiVersion: v1\nkind: Secret\nmetadata: { name: app-secret }\nstringData: { TOKEN: not-a-real-secret }\n`
        : `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: app-config-${i} }\ndata: { MODEL_PATH: /model/ResNet_152.model }\n`,
    );
  }
  for (let i = 0; i < services; i++) {
    docs.push(
      `apiVersion: v1\nkind: Service\nmetadata: { name: svc-${i} }\nspec:\n  selector: { app: app-${i % deployments} }\n  ports: [{ port: 80, targetPort: 5000 }]\n`,
    );
  }
  for (let i = 0; i < deployments; i++) {
    docs.push(`apiVersion: apps/v1
kind: Deployment
metadata: { name: app-${i} }
spec:
  replicas: 2
${progressDeadlineSeconds ? `  progressDeadlineSeconds: ${progressDeadlineSeconds}\n` : ''}  selector: { matchLabels: { app: app-${i} } }
  template:
    metadata: { labels: { app: app-${i} } }
    spec:
      containers:
        - name: app
          image: ${image}
`);
  }
  return docs.join('---\n');
}

function findKubectl(): string | undefined {
  const candidates = [
    path.join(REPO_ROOT, '.local/kubernetes-client/usr/bin/kubectl'),
    ...(process.env.PATH ?? '').split(':').map((dir) => path.join(dir, 'kubectl')),
  ];
  const found = candidates.find((file) => existsSync(file));
  return found && realpathSync(found);
}

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const seconds = (ms: number) => (ms / 1000).toFixed(2);

async function main(): Promise<void> {
  const config = readConfig();
  const kubectl = findKubectl();
  if (!kubectl)
    throw new Error('No kubectl found: run scripts/setup.sh (installs Debian kubernetes-client).');
  const kubectlVersion = (
    await exec(kubectl, ['version', '--client', '--short']).catch(() =>
      exec(kubectl, ['version', '--client']),
    )
  ).stdout
    .split('\n')[0]
    .trim();
  const stack = await new DeployStack({
    readyDelayMs: config.readyMs,
    loadBalancerDelayMs: 100,
  }).start();
  const work = mkdtempSync(path.join(os.tmpdir(), 'bench-deploy-'));
  const kubeconfig = path.join(work, 'kubeconfig');
  writeFileSync(kubeconfig, stack.adminKubeconfig());
  const env = { ...stack.oidc.jobEnv(), RUNNER_TEMP: path.join(work, 'runner-temp') };
  const rows: string[][] = [];
  try {
    // ---- overhead of a successful rollout -------------------------------------------------
    const action: number[] = [];
    const peer: number[] = [];
    for (let run = 0; run < config.runs; run++) {
      for (const variant of ['action', 'kubectl'] as const) {
        const namespace = `${variant}-${run}`;
        const dir = path.join(work, namespace);
        mkdirSync(dir, { recursive: true });
        stack.kube.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
        const image = `${REGISTRY}/ai-app@${digest(`${namespace}`)}`;
        writeFileSync(path.join(dir, 'app.yaml'), manifests(config.resources, image));
        const started = Date.now();
        if (variant === 'action') {
          const result = await runAction(
            'deploy-aks',
            { ...stack.clusterInputs(), manifests: dir, namespace },
            { env, cwd: work },
          );
          if (result.exitCode !== 0)
            throw new Error(`action failed: ${errorLines(result).join('\n')}`);
          action.push(result.milliseconds);
        } else {
          await exec(kubectl, [
            '--kubeconfig',
            kubeconfig,
            '-n',
            namespace,
            'apply',
            '--server-side',
            '--validate=false',
            '-f',
            dir,
          ]);
          const deployments = stack.kube
            .list('Deployment', namespace)
            .map((d) => d.metadata.name as string);
          for (const name of deployments) {
            await exec(kubectl, [
              '--kubeconfig',
              kubeconfig,
              '-n',
              namespace,
              'rollout',
              'status',
              `deployment/${name}`,
              '--timeout=120s',
            ]);
          }
          peer.push(Date.now() - started);
        }
      }
    }
    const actionOverhead = median(action) - config.readyMs;
    const peerOverhead = median(peer) - config.readyMs;
    rows.push(
      [
        'action bundle: sign-in (OIDC → Entra → ARM kubeconfig → AKS token), render, schema check, apply, watch',
        String(config.runs),
        seconds(median(action)),
        action.map(seconds).join(', '),
        seconds(actionOverhead),
        (actionOverhead / peerOverhead).toFixed(2),
      ],
      [
        `kubectl apply --server-side, then rollout status per Deployment (admin kubeconfig, no sign-in)`,
        String(config.runs),
        seconds(median(peer)),
        peer.map(seconds).join(', '),
        seconds(peerOverhead),
        '1.00',
      ],
    );

    // ---- failure detection ------------------------------------------------------------------
    const detection: Array<{ variant: string; total: number; detect: number; message: string }> =
      [];
    for (const variant of ['action', 'kubectl'] as const) {
      const namespace = `fail-${variant}`;
      const dir = path.join(work, namespace);
      mkdirSync(dir, { recursive: true });
      stack.kube.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
      const good = `${REGISTRY}/ai-app@${digest(`good-${variant}`)}`;
      const bad = `${REGISTRY}/ai-app@${digest(`bad-${variant}`)}`;
      stack.kube.behave(bad, { kind: 'pull-fail' });
      const app = (image: string) => manifests(4, image, config.peerDeadlineSeconds);
      writeFileSync(path.join(dir, 'app.yaml'), app(good));
      // The good version first, by the same tool (one field manager), so there is something
      // to roll back to.
      if (variant === 'action') {
        const result = await runAction(
          'deploy-aks',
          { ...stack.clusterInputs(), manifests: dir, namespace },
          { env, cwd: work },
        );
        if (result.exitCode !== 0)
          throw new Error(`action failed: ${errorLines(result).join('\n')}`);
      } else {
        await exec(kubectl, [
          '--kubeconfig',
          kubeconfig,
          '-n',
          namespace,
          'apply',
          '--server-side',
          '--validate=false',
          '-f',
          dir,
        ]);
        await exec(kubectl, [
          '--kubeconfig',
          kubeconfig,
          '-n',
          namespace,
          'rollout',
          'status',
          'deployment/app-0',
          '--timeout=60s',
        ]);
      }
      writeFileSync(path.join(dir, 'app.yaml'), app(bad));
      const failuresBefore = stack.kube.podFailures.length;
      const started = Date.now();
      let message: string;
      let ended: number;
      if (variant === 'action') {
        const result = await runAction(
          'deploy-aks',
          { ...stack.clusterInputs(), manifests: dir, namespace },
          { env, cwd: work },
        );
        ended = started + result.milliseconds;
        if (result.exitCode === 0)
          throw new Error('the action succeeded with an image that cannot be pulled');
        message = errorLines(result)[0]?.slice('::error::'.length, 200) ?? '';
        const restored = stack.kube.get('Deployment', namespace, 'app-0')!.spec.template.spec
          .containers[0].image;
        if (restored !== good) throw new Error(`not rolled back: ${restored}`);
      } else {
        await exec(kubectl, [
          '--kubeconfig',
          kubeconfig,
          '-n',
          namespace,
          'apply',
          '--server-side',
          '--validate=false',
          '-f',
          dir,
        ]);
        const failed = await exec(kubectl, [
          '--kubeconfig',
          kubeconfig,
          '-n',
          namespace,
          'rollout',
          'status',
          'deployment/app-0',
          '--timeout=300s',
        ]).then(
          () => undefined,
          (error: { stderr?: string }) => error,
        );
        ended = Date.now();
        if (!failed)
          throw new Error('kubectl rollout status succeeded with an image that cannot be pulled');
        message = (failed.stderr ?? '').trim().split('\n').at(-1) ?? '';
      }
      const firstFailure = stack.kube.podFailures
        .slice(failuresBefore)
        .find((f) => f.pod.startsWith('app-0-'));
      if (!firstFailure)
        throw new Error(
          `no pod failure recorded: ${JSON.stringify(stack.kube.podFailures)} ${failuresBefore}`,
        );
      detection.push({ variant, total: ended - started, detect: ended - firstFailure.at, message });
    }

    const [actionFailure, peerFailure] = detection;
    const text = [
      '# action-deploy-aks benchmark',
      '',
      `- Date: ${new Date().toISOString()}`,
      `- Machine: nproc ${os.cpus().length}, ${os.cpus()[0]?.model.split(' ')[0] ?? ''}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, ${os.type()} ${os.release()}`,
      `- Node ${process.version}; peer ${kubectlVersion} (\`${kubectl}\`)`,
      `- Cluster: the Kubernetes API server double (test/servers/kube-api.ts) on 127.0.0.1 over HTTPS; pods become ready ${config.readyMs} ms after creation; not a real cluster`,
      `- Manifests: ${config.resources} objects (config maps and a secret, services, ${Math.max(1, Math.round(config.resources * 0.4))} Deployments of 2 replicas), a new image digest per run`,
      `- Runs: ${config.runs} per variant, alternating; the median is reported`,
      '',
      '## Overhead of a successful rollout (wall time minus the simulated rollout time)',
      '',
      '| Variant | Runs | Wall (s, median) | All runs (s) | Overhead (s) | Overhead ÷ kubectl |',
      '|---|--:|--:|---|--:|--:|',
      ...rows.map((row) => `| ${row.join(' | ')} |`),
      '',
      `Target: overhead under 2 s for 10 resources. Measured: ${seconds(actionOverhead)} s.`,
      '',
      '## Failure detection (an image that cannot be pulled)',
      '',
      `The Deployment's progressDeadlineSeconds is ${config.peerDeadlineSeconds} here (Kubernetes' default is 600); the action's failure-grace is its default, 3 s.`,
      '',
      '| Variant | First ErrImagePull → step fails (s) | Step time (s) | Message |',
      '|---|--:|--:|---|',
      `| action bundle (then rolled back, rollback waited for) | ${seconds(actionFailure.detect)} | ${seconds(actionFailure.total)} | ${actionFailure.message.replace(/\|/g, '\\|')} |`,
      `| kubectl rollout status | ${seconds(peerFailure.detect)} | ${seconds(peerFailure.total)} | ${peerFailure.message.replace(/\|/g, '\\|')} |`,
      '',
      `Target: failure detected in under 5 s. Measured: ${seconds(actionFailure.detect)} s, ${(peerFailure.detect / actionFailure.detect).toFixed(1)}× sooner than kubectl with a ${config.peerDeadlineSeconds} s deadline (with the default 600 s deadline kubectl would take about 600 s).`,
      '',
    ].join('\n');
    console.log(text);
    mkdirSync(path.dirname(RESULTS), { recursive: true });
    writeFileSync(RESULTS, text);
  } finally {
    await stack.stop();
    rmSync(work, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
