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
 * - the canary path, with the example app as real pods (containers through dockerd, images
 *   from the real registry): from starting a canary deploy with the analysis of 200 samples
 *   to its verdict, and the pod proxy's overhead per request (the same sample POSTed to a pod
 *   directly and through the API server's pod proxy, alternately).
 *
 * Prints a Markdown report and writes it to bench/results/deploy.md. Run with
 * `npm run bench:deploy`. Environment: BENCH_RESOURCES (10), BENCH_READY_MS (3000),
 * BENCH_RUNS (3), BENCH_PEER_DEADLINE_S (20), BENCH_CANARY_RUNS (3), BENCH_PROXY_REQUESTS (200).
 */
import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { MemoryLogger } from '../src/common/logger';
import { KubeClient } from '../src/deploy-aks/kube/client';
import { connectionFromKubeconfig } from '../src/deploy-aks/kube/connection';
import { appImage, pushAppBase } from '../test/support/app-images';
import { BuildStack, REGISTRY_USER } from '../test/support/build-stack';
import { DeployStack } from '../test/support/deploy-stack';
import { kubectlBinaries } from '../test/support/kubectl';
import { APP_DIR, trainedModel } from '../test/support/models';
import { errorLines, runAction } from '../test/support/run-action';

const exec = promisify(execFile);
const RESULTS = path.join(__dirname, 'results', 'deploy.md');
const REGISTRY = 'registry.local:5000';

interface Config {
  resources: number;
  readyMs: number;
  runs: number;
  peerDeadlineSeconds: number;
  canaryRuns: number;
  proxyRequests: number;
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
    canaryRuns: int('BENCH_CANARY_RUNS', 3),
    proxyRequests: int('BENCH_PROXY_REQUESTS', 200),
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

const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
};
const seconds = (ms: number) => (ms / 1000).toFixed(2);
const percentile = (values: number[], p: number) => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.ceil(p * sorted.length) - 1)];
};

/**
 * The canary path with real pods: the example app's stable model runs (strategy basic); each
 * run deploys a retrained model as a canary with the analysis of 200 samples (no
 * auto-promote), reads its verdict, and rejects it. Then the proxy overhead: the same sample
 * bodies POSTed to one stable pod directly and through the API server's pod proxy, alternately.
 */
async function canaryPath(config: Config, work: string): Promise<string[]> {
  const build = await new BuildStack().start();
  const stack = new DeployStack(
    {
      containers: { registry: { server: build.registry.host, ...REGISTRY_USER } },
      loadBalancerDelayMs: 100,
    },
    { identity: { oidc: build.oidc, entra: build.entra } },
  );
  const namespace = 'image-classifier';
  const workspace = path.join(work, 'canary');
  try {
    await stack.start();
    stack.kube.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: namespace } });
    const [stable, retrained] = await Promise.all([trainedModel({}), trainedModel({ seed: 1 })]);
    const base = await pushAppBase(build);
    const stableImage = await appImage(build, base, stable.dir, '1'.repeat(40));
    const retrainedImage = await appImage(build, base, retrained.dir, '2'.repeat(40));
    cpSync(path.join(APP_DIR, 'k8s'), path.join(workspace, 'k8s'), { recursive: true });
    cpSync(path.join(APP_DIR, 'sample'), path.join(workspace, 'sample'), { recursive: true });
    const manifest = path.join(workspace, 'k8s', 'deployment.yaml');
    writeFileSync(
      manifest,
      readFileSync(manifest, 'utf8').replace('myacr.azurecr.io/', `${build.registry.host}/`),
    );
    const run = async (inputs: Record<string, string>) => {
      const result = await runAction(
        'deploy-aks',
        { ...stack.clusterInputs(), namespace, manifests: 'k8s/', ...inputs },
        {
          env: { ...build.oidc.jobEnv(), RUNNER_TEMP: path.join(work, 'runner-temp') },
          cwd: workspace,
        },
      );
      if (result.exitCode !== 0) throw new Error(`action failed: ${errorLines(result).join('\n')}`);
      return result;
    };
    await run({ images: stableImage });

    const rows: string[][] = [];
    const totals: number[] = [];
    for (let i = 0; i < config.canaryRuns; i++) {
      const result = await run({
        strategy: 'canary',
        images: retrainedImage,
        'analysis-requests': 'sample/analysis.jsonl',
        'analysis-field': 'results[0].label',
      });
      const analysis = JSON.parse(result.outputs.analysis) as {
        verdict: string;
        samples: number;
        milliseconds: number;
        agreement: number;
      };
      const rollout =
        /#### Canary and baseline: deployed[\s\S]*?Rollout took ([\d.]+) (ms|s)\./.exec(
          result.summary,
        );
      const rolloutMs = rollout ? Number(rollout[1]) * (rollout[2] === 's' ? 1000 : 1) : NaN;
      totals.push(result.milliseconds);
      rows.push([
        String(i + 1),
        seconds(result.milliseconds),
        seconds(rolloutMs),
        seconds(analysis.milliseconds),
        `${analysis.verdict} (${analysis.samples} samples, agreement ${(analysis.agreement * 100).toFixed(1)} %)`,
      ]);
      await run({ strategy: 'canary', action: 'reject' });
    }

    // ---- the pod proxy's overhead per request ----------------------------------------------
    const pod = stack.kube
      .list('Pod', namespace)
      .find((p) =>
        p.status?.conditions?.some(
          (c: { type: string; status: string }) => c.type === 'Ready' && c.status === 'True',
        ),
      );
    const direct = pod && stack.kube.podEndpoint(namespace, pod.metadata.name, 5000);
    if (!pod || !direct) throw new Error('no ready pod to measure the proxy with');
    const bodies = readFileSync(path.join(workspace, 'sample', 'analysis.jsonl'), 'utf8')
      .split('\n')
      .filter(Boolean)
      .map((line) => JSON.stringify((JSON.parse(line) as { request: unknown }).request));
    const logger = new MemoryLogger();
    const client = new KubeClient(
      connectionFromKubeconfig(stack.adminKubeconfig(), 'the admin kubeconfig', logger),
      logger,
    );
    const viaProxy: number[] = [];
    const viaDirect: number[] = [];
    try {
      for (let i = 0; i < config.proxyRequests; i++) {
        const body = bodies[i % bodies.length];
        const started = performance.now();
        const response = await fetch(`http://${direct.host}:${direct.port}/score`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body,
        });
        await response.arrayBuffer();
        viaDirect.push(performance.now() - started);
        const proxied = await client.proxyPod(namespace, pod.metadata.name, 5000, {
          method: 'POST',
          path: '/score',
          body,
          contentType: 'application/json',
        });
        if (response.status !== 200 || proxied.status !== 200)
          throw new Error(`direct ${response.status}, proxied ${proxied.status}`);
        viaProxy.push(proxied.milliseconds);
      }
    } finally {
      client.close();
    }
    const ms = (value: number) => value.toFixed(1);
    return [
      '## Canary path: deploy → verdict, the example app as real pods',
      '',
      `The stable model runs on 2 pods; each run deploys a retrained model (another seed) with strategy canary (1 canary and 1 baseline pod, real containers: pulled, started, readiness-probed), sends sample/analysis.jsonl (200 samples) to both through the API server's pod proxy (4 samples in flight, each to both versions at once), and reports the verdict; then a reject removes the canary. Step time is the action's wall time from start to exit (sign-in included).`,
      '',
      '| Run | Step: deploy → verdict (s) | Canary + baseline rollout (s) | Analysis of 200 samples (s) | Verdict |',
      '|--:|--:|--:|--:|---|',
      ...rows.map((row) => `| ${row.join(' | ')} |`),
      '',
      `Median deploy → verdict: ${seconds(median(totals))} s.`,
      '',
      '## Pod proxy overhead per request',
      '',
      `${config.proxyRequests} POST /score requests with the analysis samples' bodies to one pod, alternately straight to its container port and through the API server's pod proxy (the action's KubeClient.proxyPod: HTTPS with a bearer token to the API server double, which forwards to the same port), one at a time.`,
      '',
      '| Route | Requests | p50 (ms) | p95 (ms) |',
      '|---|--:|--:|--:|',
      `| straight to the container (http://127.0.0.1:${direct.port}) | ${viaDirect.length} | ${ms(percentile(viaDirect, 0.5))} | ${ms(percentile(viaDirect, 0.95))} |`,
      `| through the pod proxy | ${viaProxy.length} | ${ms(percentile(viaProxy, 0.5))} | ${ms(percentile(viaProxy, 0.95))} |`,
      '',
      `Overhead of the proxy: ${ms(percentile(viaProxy, 0.5) - percentile(viaDirect, 0.5))} ms at p50, ${ms(percentile(viaProxy, 0.95) - percentile(viaDirect, 0.95))} ms at p95, per request. On AKS the API server is a network hop away from the runner and the node, so expect more there.`,
      '',
    ];
  } finally {
    await stack.stop();
    await build.stop();
  }
}

async function main(): Promise<void> {
  const config = readConfig();
  const kubectl = kubectlBinaries()[0];
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
    const canary = await canaryPath(config, work);
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
      `The Deployment's progressDeadlineSeconds is ${config.peerDeadlineSeconds} here (Kubernetes' default is 600); the action's failure-grace is its default, 60 s, which applies only to pull errors that can pass by themselves: this one says the image was not found, so it is final at once.`,
      '',
      '| Variant | First ErrImagePull → step fails (s) | Step time (s) | Message |',
      '|---|--:|--:|---|',
      `| action bundle (then rolled back, rollback waited for) | ${seconds(actionFailure.detect)} | ${seconds(actionFailure.total)} | ${actionFailure.message.replace(/\|/g, '\\|')} |`,
      `| kubectl rollout status | ${seconds(peerFailure.detect)} | ${seconds(peerFailure.total)} | ${peerFailure.message.replace(/\|/g, '\\|')} |`,
      '',
      `Target: failure detected in under 5 s. Measured: ${seconds(actionFailure.detect)} s, ${(peerFailure.detect / actionFailure.detect).toFixed(1)}× sooner than kubectl with a ${config.peerDeadlineSeconds} s deadline (with the default 600 s deadline kubectl would take about 600 s).`,
      '',
      ...canary,
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
