import { createHash } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { AKS_SERVER_APP_ID } from '../servers/kube-api';
import { DeployStack, UNPRIVILEGED_CLIENT_ID } from '../support/deploy-stack';
import { appManifest, REGISTRY } from '../support/manifests';
import { freePort } from '../support/ports';
import { errorLines, runAction, type ActionRun } from '../support/run-action';

const DIGEST_V1 = `sha256:${'1'.repeat(64)}`;
const DIGEST_V2 = `sha256:${'2'.repeat(64)}`;
const DIGEST_BAD = `sha256:${'b'.repeat(64)}`;
const MODEL_DIGEST = 'c'.repeat(64);

describe('deploy-aks against the ARM, Entra and Kubernetes API doubles', () => {
  const stack = new DeployStack();
  let workspace: string;

  beforeAll(() => stack.start());
  afterAll(() => stack.stop());
  beforeEach(() => (workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'))));
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  const deploy = (inputs: Record<string, string>, env: Record<string, string> = {}) =>
    stack.runDeploy(inputs, workspace, {
      GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567',
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_REPOSITORY: 'octo-org/ai-app',
      GITHUB_RUN_ID: '42',
      ...env,
    });

  const writeManifest = (name: string, text: string) => {
    const dir = path.join(workspace, 'k8s');
    mkdirSync(dir, { recursive: true });
    writeFileSync(path.join(dir, name), text);
  };

  const expectFailure = (run: ActionRun, message: RegExp) => {
    expect(run.exitCode).toBe(1);
    expect(errorLines(run).join('\n')).toMatch(message);
  };

  /** Every line of stdout that is not the ::add-mask:: command itself. */
  const printed = (run: ActionRun) =>
    (run.stdout + run.stderr)
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n');

  it('applies, waits for the rollout through Entra tokens for the AKS server app, and reports', async () => {
    writeManifest('app.yaml', appManifest('web'));
    const run = await deploy({
      namespace: 'ai',
      images: `${REGISTRY}/ai-app@${DIGEST_V1}`,
      'model-digest': MODEL_DIGEST,
      labels: 'app.kubernetes.io/part-of=ai-app',
    });
    // The namespace does not exist yet: the API server refuses objects in it.
    expectFailure(run, /namespaces "ai" not found/);

    writeManifest('namespace.yaml', 'apiVersion: v1\nkind: Namespace\nmetadata:\n  name: ai\n');
    stack.arm.bearerTokens.clear();
    stack.kube.bearerTokens.clear();
    const ok = await deploy({
      namespace: 'ai',
      images: `${REGISTRY}/ai-app@${DIGEST_V1}`,
      'model-digest': MODEL_DIGEST,
      labels: 'app.kubernetes.io/part-of=ai-app',
    });
    expect(errorLines(ok)).toEqual([]);
    expect(ok.exitCode).toBe(0);
    expect(ok.outputs.namespace).toBe('ai');
    expect(JSON.parse(ok.outputs.resources)).toEqual([
      'Namespace/ai',
      'ConfigMap/web-config',
      'Service/web',
      'Deployment/web',
    ]);
    expect(ok.outputs.revision).toBe('1');
    expect(ok.outputs['rolled-back']).toBe('false');
    expect(JSON.parse(ok.outputs['service-endpoints'])).toEqual([
      expect.stringMatching(/^20\.61\./),
    ]);
    expect(readFileSync(ok.outputs.bundle, 'utf8')).toContain(`${REGISTRY}/ai-app@${DIGEST_V1}`);

    const deployment = stack.kube.get('Deployment', 'ai', 'web')!;
    const images = [
      ...deployment.spec.template.spec.initContainers,
      ...deployment.spec.template.spec.containers,
    ].map((c: { image: string }) => c.image);
    expect(images).toEqual([`${REGISTRY}/ai-app@${DIGEST_V1}`, `${REGISTRY}/ai-app@${DIGEST_V1}`]);
    expect(deployment.metadata.labels['app.kubernetes.io/part-of']).toBe('ai-app');
    expect(deployment.metadata.annotations).toMatchObject({
      'ai-app-delivery.github.io/commit': '0123456789abcdef0123456789abcdef01234567',
      'ai-app-delivery.github.io/run-url': 'https://github.com/octo-org/ai-app/actions/runs/42',
      'ai-app-delivery.github.io/model-digest': MODEL_DIGEST,
      'ai-app-delivery.github.io/images': `${REGISTRY}/ai-app@${DIGEST_V1}`,
    });
    expect(deployment.status.availableReplicas).toBe(2);
    expect(deployment.metadata.managedFields.map((f: { manager: string }) => f.manager)).toContain(
      'deploy-aks',
    );

    // Server-side apply with one field manager; the rollout is watched, not polled.
    const applies = stack.kube.requests.filter((r) => r.method === 'PATCH');
    expect(applies.every((r) => r.contentType === 'application/apply-patch+yaml')).toBe(true);
    expect(applies.every((r) => /fieldManager=deploy-aks/.test(r.path))).toBe(true);
    const deploymentReads = stack.kube.requests.filter(
      (r) => /\/deployments(\?|$)/.test(r.path) && r.method === 'GET',
    );
    expect(deploymentReads.filter((r) => /watch=1/.test(r.path)).length).toBeGreaterThan(0);
    expect(deploymentReads.length).toBeLessThanOrEqual(4);

    // ARM gave a kubelogin kubeconfig; the action answered it with Entra tokens for the AKS app.
    expect(stack.arm.calls.at(-1)?.action).toBe('listClusterUserCredential');
    expect(stack.entra.tokenRequests.map((r) => r.scope)).toEqual(
      expect.arrayContaining([
        `https://management.azure.com/.default`,
        `${AKS_SERVER_APP_ID}/.default`,
      ]),
    );
    expect(ok.summary).toContain('| Deployment/web | ai | created |');
    expect(ok.summary).toMatch(/ready in/);
    expect(ok.summary).toContain(`${REGISTRY}/ai-app@${DIGEST_V1}`);

    // No token reaches the log, except in the ::add-mask:: lines that hide it.
    const tokens = [
      ...stack.oidc.issuedTokens,
      ...stack.arm.bearerTokens,
      ...stack.kube.bearerTokens,
    ];
    expect(stack.kube.bearerTokens.size).toBeGreaterThan(0);
    for (const token of tokens) expect(printed(ok)).not.toContain(token);
    const masked = ok.stdout.split('\n').filter((line) => line.startsWith('::add-mask::'));
    for (const token of [...stack.arm.bearerTokens, ...stack.kube.bearerTokens]) {
      expect(masked).toContain(`::add-mask::${token}`);
    }

    // A second run with nothing new changes nothing.
    const again = await deploy({
      namespace: 'ai',
      images: `${REGISTRY}/ai-app@${DIGEST_V1}`,
      'model-digest': MODEL_DIGEST,
      labels: 'app.kubernetes.io/part-of=ai-app',
    });
    expect(again.exitCode).toBe(0);
    expect(again.summary).toContain('| Deployment/web | ai | unchanged |');
    expect(again.outputs.revision).toBe('1');
  });

  it('detects an image that cannot be pulled within seconds and rolls back', async () => {
    writeManifest('app.yaml', appManifest('pull', 2));
    const first = await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V1}` });
    expect(first.exitCode).toBe(0);
    stack.kube.behave(`${REGISTRY}/ai-app@${DIGEST_BAD}`, { kind: 'pull-fail' });
    // "not found" cannot pass with another pull: it fails at once, whatever the grace.
    const run = await deploy({
      images: `${REGISTRY}/ai-app@${DIGEST_BAD}`,
      timeout: '5m',
      'failure-grace': '10m',
    });
    expectFailure(
      run,
      /Rollout of Deployment\/pull in namespace default failed: pod pull-\w+-\w+ container (warm-model|app): (ErrImagePull|ImagePullBackOff): failed to pull and unpack image .*: not found/,
    );
    expectFailure(run, /Rolled back Deployment\/pull/);
    expect(run.milliseconds).toBeLessThan(20_000);
    expect(run.outputs['rolled-back']).toBe('true');
    expect(run.outputs.revision).toBe('3');
    const deployment = stack.kube.get('Deployment', 'default', 'pull')!;
    expect(deployment.spec.template.spec.containers[0].image).toBe(
      `${REGISTRY}/ai-app@${DIGEST_V1}`,
    );
    expect(deployment.status.availableReplicas).toBe(2);
    expect(run.summary).toContain('Deployment failed and was rolled back');
    expect(run.summary).toMatch(
      /\| Deployment\/pull \| default \| configured \| failed: (ErrImagePull|ImagePullBackOff) \|/,
    );
    // A container that never started has no logs to show.
    expect(errorLines(run).join('\n')).not.toContain('Last log lines');
    expect(run.summary).toMatch(/What was restored/);
  });

  it('refuses to let an older run replace what a later run deployed, unless told to', async () => {
    writeManifest('app.yaml', appManifest('ordered', 1));
    const newer = { GITHUB_RUN_ID: '9001', GITHUB_SHA: 'b'.repeat(40) };
    const older = { GITHUB_RUN_ID: '9000', GITHUB_SHA: 'a'.repeat(40) };
    expect((await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V1}` }, newer)).exitCode).toBe(0);
    // The older run finishes last: the concurrency group let it through, the action does not.
    const late = await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V2}` }, older);
    expectFailure(
      late,
      /A later workflow run already deployed Deployment\/ordered \(run 9001, commit bbbbbbbbbbbb\); this is run 9000, commit aaaaaaaaaaaa\. .*nothing was applied.*allow-older-release: true/,
    );
    const live = stack.kube.get('Deployment', 'default', 'ordered')!;
    expect(live.spec.template.spec.containers[0].image).toBe(`${REGISTRY}/ai-app@${DIGEST_V1}`);
    // A re-run of the later run (same run id, same commit) is no conflict.
    expect((await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V1}` }, newer)).exitCode).toBe(0);
    // A rollback by hand is allowed when asked for.
    const rollback = await deploy(
      { images: `${REGISTRY}/ai-app@${DIGEST_V2}`, 'allow-older-release': 'true' },
      older,
    );
    expect(rollback.exitCode).toBe(0);
    expect(rollback.stdout).toMatch(/::warning::Replacing a newer release with this older one/);
    expect(
      stack.kube.get('Deployment', 'default', 'ordered')!.spec.template.spec.containers[0].image,
    ).toBe(`${REGISTRY}/ai-app@${DIGEST_V2}`);
  });

  it('rides out a registry that throttles pulls (429) instead of rolling back a good release', async () => {
    writeManifest('app.yaml', appManifest('throttled', 2));
    const first = await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V1}` });
    expect(first.exitCode).toBe(0);
    const throttled = `${REGISTRY}/ai-app@sha256:${'7'.repeat(64)}`;
    stack.kube.behave(throttled, { kind: 'pull-throttled', failures: 2 });
    const run = await deploy({ images: throttled, timeout: '5m' });
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(run.outputs['rolled-back']).toBe('false');
    // The pods did show ErrImagePull: the rollout waited it out.
    expect(
      stack.kube.podFailures
        .filter((failure) => failure.pod.startsWith('throttled-'))
        .map((failure) => failure.reason),
    ).toContain('ErrImagePull');
    expect(
      stack.kube.get('Deployment', 'default', 'throttled')!.spec.template.spec.containers[0].image,
    ).toBe(throttled);
  });

  it('fails a first deployment that cannot come up, with nothing to roll back to', async () => {
    writeManifest('app.yaml', appManifest('fresh-bad', 1));
    const image = `${REGISTRY}/ai-app@sha256:${'f'.repeat(64)}`;
    stack.kube.behave(image, { kind: 'config-error' });
    const run = await deploy({ images: image });
    expectFailure(run, /CreateContainerConfigError: secret "model-credentials" not found/);
    expectFailure(run, /Nothing to roll back: Deployment\/fresh-bad did not exist before this run/);
    expect(run.outputs['rolled-back']).toBe('false');
    expect(run.summary).toContain('Created by this run and left in place: Deployment/fresh-bad.');
  });

  it('rolls back a crash-looping version and reports its last log lines', async () => {
    writeManifest('app.yaml', appManifest('crash', 1));
    expect((await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V1}` })).exitCode).toBe(0);
    stack.kube.behave(`${REGISTRY}/ai-app@${DIGEST_V2}`, {
      kind: 'crash',
      logs: ['loading model', 'FileNotFoundError: /model/ResNet_152.model'],
    });
    const run = await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V2}` });
    expectFailure(run, /CrashLoopBackOff/);
    expectFailure(run, /FileNotFoundError: \/model\/ResNet_152\.model/);
    expect(run.outputs['rolled-back']).toBe('true');
    expect(
      stack.kube.get('Deployment', 'default', 'crash')!.spec.template.spec.containers[0].image,
    ).toBe(`${REGISTRY}/ai-app@${DIGEST_V1}`);
    expect(run.summary).toContain('FileNotFoundError');
  });

  it('honours the timeout when pods stay pending, and can leave the failed version in place', async () => {
    writeManifest('app.yaml', appManifest('pending', 1));
    expect((await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V1}` })).exitCode).toBe(0);
    const image = `${REGISTRY}/ai-app@sha256:${'d'.repeat(64)}`;
    stack.kube.behave(image, { kind: 'pending' });
    const run = await deploy({ images: image, timeout: '3s', 'rollback-on-failure': 'false' });
    expectFailure(run, /timed out: Deployment\/pending .*Unschedulable: 0\/3 nodes are available/);
    expectFailure(run, /Rollback is off/);
    expect(run.milliseconds).toBeGreaterThan(3_000);
    expect(run.milliseconds).toBeLessThan(15_000);
    expect(run.outputs['rolled-back']).toBe('false');
    expect(
      stack.kube.get('Deployment', 'default', 'pending')!.spec.template.spec.containers[0].image,
    ).toBe(image);
  });

  it('waits for StatefulSets, DaemonSets and Jobs too, and fails on a failed Job', async () => {
    const podTemplate = (app: string, image: string, restart = '') => `
  template:
    metadata:
      labels: { app: ${app} }
    spec:
${restart}      containers:
        - name: main
          image: ${image}`;
    const workloads = (jobImage: string) => `apiVersion: apps/v1
kind: StatefulSet
metadata: { name: cache }
spec:
  serviceName: cache
  replicas: 2
  selector: { matchLabels: { app: cache } }${podTemplate('cache', `${REGISTRY}/cache:7`)}
---
apiVersion: apps/v1
kind: DaemonSet
metadata: { name: agent }
spec:
  selector: { matchLabels: { app: agent } }${podTemplate('agent', `${REGISTRY}/agent:1`)}
---
apiVersion: batch/v1
kind: Job
metadata: { name: warm-${jobImage.length} }
spec:
  backoffLimit: 0${podTemplate('warm', jobImage, '      restartPolicy: Never\n')}
`;
    writeManifest('workloads.yaml', workloads(`${REGISTRY}/ai-app:warm`));
    const run = await deploy({});
    expect(errorLines(run)).toEqual([]);
    expect(stack.kube.get('StatefulSet', 'default', 'cache')!.status.readyReplicas).toBe(2);
    expect(stack.kube.get('DaemonSet', 'default', 'agent')!.status.numberAvailable).toBe(2);
    expect(run.summary).toMatch(/\| StatefulSet\/cache \| default \| created \| ready in/);
    expect(run.summary).toMatch(/\| Job\/warm-\d+ \| default \| created \| ready in/);

    const broken = `${REGISTRY}/ai-app:warm-broken`;
    stack.kube.behave(broken, { kind: 'crash', logs: ['cannot load model'] });
    writeManifest('workloads.yaml', workloads(broken));
    const failed = await deploy({});
    expectFailure(
      failed,
      /Rollout of Job\/warm-\d+ in namespace default failed: (job failed: BackoffLimitExceeded|pod warm-.* CrashLoopBackOff)/,
    );
  });

  it('lists again when its watches are dropped and their history compacted (410 Expired)', async () => {
    writeManifest('app.yaml', appManifest('relist', 1));
    const image = `${REGISTRY}/ai-app@sha256:${'e'.repeat(64)}`;
    stack.kube.behave(image, { kind: 'ready', delayMs: 1_500 });
    const listsBefore = stack.kube.requests.filter(
      (r) => /\/deployments$/.test(r.path.split('?')[0]) && !/watch=/.test(r.path),
    ).length;
    const seen = stack.kube.requests.length;
    const running = deploy({ images: image });
    // Once the action is watching, drop every watch and forget the history it would resume from.
    for (
      let i = 0;
      i < 100 &&
      !stack.kube.requests.slice(seen).some((r) => /deployments\?.*watch=1/.test(r.path));
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
    await new Promise((resolve) => setTimeout(resolve, 300));
    stack.kube.compactAndDropWatches();
    const run = await running;
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    const lists = stack.kube.requests.filter(
      (r) => /\/deployments$/.test(r.path.split('?')[0]) && !/watch=/.test(r.path),
    ).length;
    expect(lists - listsBefore).toBeGreaterThanOrEqual(2);
  });

  it('dry run changes nothing and shows a diff', async () => {
    const secret = (value: string) =>
      `apiVersion: v1\nkind: Secret\nmetadata:\n  name: dry-secret\nstringData:\n  API_KEY: ${value}\n`;
    writeManifest('secret.yaml', secret('first-secret-value-123'));
    writeManifest('app.yaml', appManifest('dry', 1));
    expect((await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V1}` })).exitCode).toBe(0);
    const before = stack.kube.get('Deployment', 'default', 'dry')!;
    writeManifest('secret.yaml', secret('second-secret-value-456'));
    const run = await deploy({ images: `${REGISTRY}/ai-app@${DIGEST_V2}`, 'dry-run': 'true' });
    expect(errorLines(run)).toEqual([]);
    // Secret values are masked in the log and redacted in the summary's diff and the bundle.
    expect(run.stdout).toContain('::add-mask::second-secret-value-456');
    for (const text of [printed(run), run.summary, readFileSync(run.outputs.bundle, 'utf8')]) {
      expect(text).not.toContain('second-secret-value-456');
      expect(text).not.toContain('first-secret-value-123');
    }
    expect(run.summary).toMatch(/\+ {2}API_KEY: \(redacted, hmac:[0-9a-f]{12}\)/);
    // Keyed per run: the plain hash of a value (which anyone could test guesses against) is absent.
    const plain = createHash('sha256').update('second-secret-value-456').digest('hex').slice(0, 12);
    expect(run.summary).not.toContain(plain);
    expect(run.exitCode).toBe(0);
    expect(stack.kube.get('Deployment', 'default', 'dry')).toEqual(before);
    expect(run.summary).toContain('dry run');
    expect(run.summary).toContain(`-          image: ${REGISTRY}/ai-app@${DIGEST_V1}`);
    expect(run.summary).toContain(`+          image: ${REGISTRY}/ai-app@${DIGEST_V2}`);
    expect(stack.kube.requests.filter((r) => r.method === 'PATCH').at(-1)!.path).toMatch(
      /dryRun=All/,
    );
  });

  it('reaches a cluster through a kubeconfig, and through the admin credential', async () => {
    writeManifest('app.yaml', appManifest('kc', 1));
    writeFileSync(path.join(workspace, 'kubeconfig'), stack.adminKubeconfig());
    const run = await deploy({
      'resource-group': '',
      'cluster-name': '',
      kubeconfig: 'kubeconfig',
      images: `${REGISTRY}/ai-app@${DIGEST_V1}`,
    });
    expect(errorLines(run)).toEqual([]);
    expect(printed(run)).not.toContain(stack.adminToken);
    const admin = await deploy({ admin: 'true', images: `${REGISTRY}/ai-app@${DIGEST_V1}` });
    expect(admin.exitCode).toBe(0);
    expect(stack.arm.calls.at(-1)?.action).toBe('listClusterAdminCredential');
    expect(printed(admin)).not.toContain(stack.adminToken);
  });

  it('names the missing Azure role when ARM refuses the credential', async () => {
    writeManifest('app.yaml', appManifest('denied', 1));
    const run = await deploy({ 'client-id': UNPRIVILEGED_CLIENT_ID });
    expectFailure(run, /AuthorizationFailed.*Azure Kubernetes Service Cluster User Role/);
  });

  it('names the verb and resource when Kubernetes forbids them', async () => {
    writeManifest('app.yaml', appManifest('forbidden', 1));
    stack.kube.forbidden.add('patch deployments');
    try {
      const run = await deploy({});
      expectFailure(
        run,
        /Kubernetes forbids 'patch' on deployments\.apps 'forbidden' in namespace 'default'/,
      );
    } finally {
      stack.kube.forbidden.delete('patch deployments');
    }
  });

  it('says when the API server is unreachable', async () => {
    writeManifest('app.yaml', appManifest('gone', 1));
    const port = await freePort();
    const kubeconfig = stack
      .adminKubeconfig()
      .replace(/server: https:\/\/127\.0\.0\.1:\d+/, `server: https://127.0.0.1:${port}`);
    const run = await deploy({ 'resource-group': '', 'cluster-name': '', kubeconfig });
    expectFailure(
      run,
      new RegExp(`API server https://127\\.0\\.0\\.1:${port} is unreachable \\(ECONNREFUSED`),
    );
  });

  it('refuses to take over fields another manager owns unless force-conflicts is set', async () => {
    writeManifest('app.yaml', appManifest('owned', 1));
    expect((await deploy({})).exitCode).toBe(0);
    stack.kube.seed(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'owned', namespace: 'default' },
        spec: { replicas: 3 },
      },
      'kubectl-edit',
    );
    const run = await deploy({});
    expectFailure(
      run,
      /conflicts with another field manager: \.spec\.replicas conflict with "kubectl-edit".*force-conflicts/,
    );
    const forced = await deploy({ 'force-conflicts': 'true' });
    expect(forced.exitCode).toBe(0);
    expect(stack.kube.get('Deployment', 'default', 'owned')!.spec.replicas).toBe(1);
  });

  it('reports manifest mistakes with file, document and line', async () => {
    writeManifest(
      'bad.yaml',
      'apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\ndata: [unclosed\n',
    );
    const syntax = await deploy({});
    expectFailure(syntax, /YAML syntax error in k8s\/bad\.yaml at line 6/);
    // Anchored to the file and line, so the runner shows it on the manifest in a pull request.
    expect(syntax.stdout).toMatch(
      /^::error title=Invalid manifest,file=k8s\/bad\.yaml,line=6::YAML syntax error/m,
    );
    writeManifest('bad.yaml', appManifest('schema').replace('replicas: 2', 'replicas: two'));
    expectFailure(
      await deploy({}),
      /k8s\/bad\.yaml,line=\d+::Deployment\/schema: spec\.replicas must be integer/,
    );
    expectFailure(
      await deploy({ manifests: 'deploy/*.yaml' }),
      /manifests entry 'deploy\/\*\.yaml': the pattern matches no file/,
    );
  });
});

describe('deploy-aks with short-lived Entra tokens', () => {
  // Tokens live 5 min + 2 s; the action renews them 5 min before expiry, so each request
  // after the first 2 s needs a new one, and the API double refuses expired ones.
  const stack = new DeployStack({ readyDelayMs: 4_000 }, { entraTokenLifetimeSeconds: 302 });
  let workspace: string;
  beforeAll(() => stack.start());
  afterAll(() => stack.stop());
  beforeEach(() => (workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'))));
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  it('asks Entra for a fresh AKS token when the one it holds nears expiry', async () => {
    mkdirSync(path.join(workspace, 'k8s'));
    writeFileSync(path.join(workspace, 'k8s', 'app.yaml'), appManifest('fresh', 1));
    const run = await runAction(
      'deploy-aks',
      { ...stack.clusterInputs(), manifests: 'k8s/', images: `${REGISTRY}/ai-app@${DIGEST_V1}` },
      {
        env: { ...stack.oidc.jobEnv(), RUNNER_TEMP: path.join(workspace, '.tmp') },
        cwd: workspace,
      },
    );
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    const aksTokens = stack.entra.tokenRequests.filter(
      (r) => r.scope === `${AKS_SERVER_APP_ID}/.default`,
    );
    expect(aksTokens.length).toBeGreaterThan(1);
    expect(stack.kube.bearerTokens.size).toBe(aksTokens.length);
  });
});
