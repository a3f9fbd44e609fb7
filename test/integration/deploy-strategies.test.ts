import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DeployStack } from '../support/deploy-stack';
import { kubectl, kubectlBinaries } from '../support/kubectl';
import { appManifest, REGISTRY } from '../support/manifests';
import { errorLines, type ActionRun } from '../support/run-action';

const image = (n: number) => `${REGISTRY}/ai-app@sha256:${String(n).repeat(64).slice(0, 64)}`;

describe('deploy-aks canary and blue-green against the Kubernetes double, checked with kubectl', () => {
  const stack = new DeployStack();
  const [binary] = kubectlBinaries();
  let workspace: string;

  beforeAll(() => stack.start());
  afterAll(() => stack.stop());
  beforeEach(() => {
    workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'));
    mkdirSync(path.join(workspace, 'k8s'));
    writeFileSync(path.join(workspace, 'kubeconfig'), stack.adminKubeconfig());
  });
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  const run = (inputs: Record<string, string>) =>
    stack.runDeploy(inputs, workspace, { GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567' });
  const ok = (result: ActionRun) => {
    expect(errorLines(result)).toEqual([]);
    expect(result.exitCode).toBe(0);
    return result;
  };
  const expectFailure = (result: ActionRun, message: RegExp) => {
    expect(result.exitCode).toBe(1);
    expect(errorLines(result).join('\n')).toMatch(message);
  };
  const get = (name: string) => stack.kube.get('Deployment', 'default', name);
  const imageOf = (name: string) => get(name)?.spec.template.spec.containers[0].image;
  const kubectlGet = async (...args: string[]) =>
    (await kubectl(binary, path.join(workspace, 'kubeconfig'), workspace, args)).stdout.trim();

  it('canary: deploys beside the stable version, replaces the canary, promotes, rejects', async () => {
    writeFileSync(path.join(workspace, 'k8s', 'app.yaml'), appManifest('web', 4));
    ok(await run({ images: image(1) }));

    const first = ok(await run({ strategy: 'canary', images: image(2) }));
    // 20 % of the Service's pods: 1 canary and 1 baseline beside the 4 stable pods.
    expect(get('web-canary')!.spec.replicas).toBe(1);
    expect(imageOf('web-canary')).toBe(image(2));
    expect(get('web-canary')!.spec.selector.matchLabels).toEqual({
      app: 'web',
      'workflow/version': 'canary',
    });
    expect(get('web-canary')!.metadata.annotations).toMatchObject({
      'workflow/version': 'canary',
      'ai-app-delivery.github.io/stable-workload': 'web',
    });
    expect(imageOf('web-baseline')).toBe(image(1));
    expect(get('web-baseline')!.spec.template.metadata.labels['workflow/version']).toBe('baseline');
    expect(imageOf('web')).toBe(image(1));
    expect(get('web')!.metadata.annotations['deployment.kubernetes.io/revision']).toBe('1');
    // The Service still selects every pod: the canary gets its share of the traffic.
    expect(stack.kube.get('Service', 'default', 'web')!.spec.selector).toEqual({ app: 'web' });
    expect(first.outputs.verdict).toBe('');
    expect(first.outputs.revision).toBe('');
    expect(JSON.parse(first.outputs.resources)).toEqual([
      'ConfigMap/web-config',
      'Service/web',
      'Deployment/web-canary',
      'Deployment/web-baseline',
    ]);
    expect(first.summary).toContain('### Canary deploy');
    expect(first.summary).toContain(
      '| Deployment/web | Deployment/web-canary | Deployment/web-baseline | 1 |',
    );
    expect(first.summary).toContain('`action: promote`');

    // What a person sees with the real kubectl.
    expect(await kubectlGet('get', 'deployments', '-o', 'name')).toBe(
      ['web', 'web-baseline', 'web-canary'].map((n) => `deployment.apps/${n}`).join('\n'),
    );
    expect(await kubectlGet('rollout', 'status', 'deployment/web-canary', '--timeout=20s')).toBe(
      'deployment "web-canary" successfully rolled out',
    );
    expect(
      (await kubectlGet('get', 'pods', '-l', 'workflow/version=canary', '-o', 'name')).split('\n'),
    ).toEqual([expect.stringMatching(/^pod\/web-canary-\w+-\w+$/)]);

    // Deploying again while the canary is up replaces it; the baseline stays the stable version.
    ok(await run({ strategy: 'canary', images: image(3), 'baseline-and-canary-replicas': '2' }));
    expect(imageOf('web-canary')).toBe(image(3));
    expect(get('web-canary')!.spec.replicas).toBe(2);
    expect(imageOf('web-baseline')).toBe(image(1));

    // Promote must roll out what the canary runs.
    expectFailure(
      await run({ strategy: 'canary', action: 'promote', images: image(2) }),
      /Deployment\/web-canary runs .*3333, but the manifests with this run's images give .*2222/,
    );
    const promoted = ok(await run({ strategy: 'canary', action: 'promote', images: image(3) }));
    expect(imageOf('web')).toBe(image(3));
    expect(get('web-canary')).toBeUndefined();
    expect(get('web-baseline')).toBeUndefined();
    expect(
      stack.kube.list('Pod', 'default').filter((p) => /-canary-|-baseline-/.test(p.metadata.name)),
    ).toEqual([]);
    expect(promoted.outputs.revision).toBe('2');
    expect(promoted.summary).toContain('### Canary promote: promoted');
    expect(promoted.summary).toContain('Deleted: Deployment/web-canary, Deployment/web-baseline.');
    expect(await kubectlGet('rollout', 'status', 'deployment/web', '--timeout=20s')).toBe(
      'deployment "web" successfully rolled out',
    );

    ok(await run({ strategy: 'canary', images: image(4) }));
    const rejected = ok(await run({ strategy: 'canary', action: 'reject' }));
    expect(get('web-canary')).toBeUndefined();
    expect(get('web-baseline')).toBeUndefined();
    expect(imageOf('web')).toBe(image(3));
    expect(get('web')!.metadata.annotations['deployment.kubernetes.io/revision']).toBe('2');
    expect(rejected.summary).toContain('### Canary reject: rejected');
    expect(await kubectlGet('get', 'deployments', '-o', 'name')).toBe('deployment.apps/web');

    expectFailure(
      await run({ strategy: 'canary', action: 'reject' }),
      /Nothing to reject: no canary or baseline of Deployment\/web in namespace 'default'/,
    );
    expectFailure(
      await run({ strategy: 'canary', action: 'promote', images: image(4) }),
      /Nothing to promote: Deployment\/web-canary not found in namespace 'default'/,
    );
  });

  it('canary: one that cannot come up is removed within seconds; the stable version is untouched', async () => {
    writeFileSync(path.join(workspace, 'k8s', 'app.yaml'), appManifest('pulls', 2));
    ok(await run({ images: image(1) }));
    stack.kube.behave(image(9), { kind: 'pull-fail' });
    const failed = await run({ strategy: 'canary', images: image(9) });
    expectFailure(
      failed,
      /The canary did not come up\. Rollout of Deployment\/pulls-canary in namespace default failed: pod pulls-canary-\w+-\w+ container (warm-model|app): (ErrImagePull|ImagePullBackOff).* Removed Deployment\/pulls-canary, Deployment\/pulls-baseline; Deployment\/pulls untouched\./,
    );
    expect(failed.milliseconds).toBeLessThan(20_000);
    expect(get('pulls-canary')).toBeUndefined();
    expect(get('pulls-baseline')).toBeUndefined();
    expect(imageOf('pulls')).toBe(image(1));
    expect(get('pulls')!.status.availableReplicas).toBe(2);
  });

  it('blue-green: deploys green without moving traffic, promotes through green, rejects', async () => {
    writeFileSync(path.join(workspace, 'k8s', 'app.yaml'), appManifest('shop', 2));
    ok(await run({ images: image(1) }));

    const deployed = ok(await run({ strategy: 'blue-green', images: image(2) }));
    // The live pods were labelled as the stable version once; the Service selects only them.
    expect(get('shop')!.spec.template.metadata.labels['k8s.deploy.color']).toBe('None');
    expect(get('shop')!.spec.selector.matchLabels).toEqual({ app: 'shop' });
    expect(imageOf('shop')).toBe(image(1));
    expect(stack.kube.get('Service', 'default', 'shop')!.spec.selector).toEqual({
      app: 'shop',
      'k8s.deploy.color': 'None',
    });
    expect(imageOf('shop-green')).toBe(image(2));
    expect(get('shop-green')!.spec.replicas).toBe(2);
    expect(get('shop-green')!.spec.selector.matchLabels).toEqual({
      app: 'shop',
      'k8s.deploy.color': 'green',
    });
    expect(deployed.summary).toContain('### Blue-green deploy');
    expect(await kubectlGet('get', 'deployments', '-o', 'name')).toContain(
      'deployment.apps/shop-green',
    );
    expect(await kubectlGet('rollout', 'status', 'deployment/shop-green', '--timeout=20s')).toBe(
      'deployment "shop-green" successfully rolled out',
    );

    const before = stack.kube.requests.length;
    const promoted = ok(await run({ strategy: 'blue-green', action: 'promote', images: image(2) }));
    // The Services moved to green, the stable Deployment rolled while green served, then back.
    const writes = stack.kube.requests
      .slice(before)
      .filter((r) => r.method === 'PATCH')
      .map((r) => `${/\/(\w+)\/shop/.exec(r.path)?.[1]} ${r.contentType}`)
      .filter((w) => !/apply-patch/.test(w) || w.startsWith('deployments'));
    expect(writes).toEqual([
      'services application/json-patch+json',
      'deployments application/apply-patch+yaml',
      'services application/json-patch+json',
    ]);
    expect(promoted.summary).toContain('Service/shop routed to green.');
    expect(promoted.summary).toContain('Service/shop routed to stable.');
    expect(imageOf('shop')).toBe(image(2));
    expect(get('shop-green')).toBeUndefined();
    expect(stack.kube.get('Service', 'default', 'shop')!.spec.selector['k8s.deploy.color']).toBe(
      'None',
    );
    expect(promoted.outputs.revision).toBe('3');

    ok(await run({ strategy: 'blue-green', images: image(3) }));
    expect(imageOf('shop-green')).toBe(image(3));
    ok(await run({ strategy: 'blue-green', action: 'reject' }));
    expect(get('shop-green')).toBeUndefined();
    expect(imageOf('shop')).toBe(image(2));
    expect(await kubectlGet('get', 'deployments', '-o', 'name')).not.toContain('shop-green');
    expectFailure(
      await run({ strategy: 'blue-green', action: 'reject' }),
      /Nothing to reject: no green version of Deployment\/shop/,
    );
  });
});
