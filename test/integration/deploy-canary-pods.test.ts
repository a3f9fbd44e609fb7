import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { appImage, pushAppBase } from '../support/app-images';
import { BuildStack, REGISTRY_USER } from '../support/build-stack';
import { DeployStack } from '../support/deploy-stack';
import { APP_DIR, trainedModel } from '../support/models';
import { errorLines, type ActionRun } from '../support/run-action';

const NAMESPACE = 'image-classifier';
const SAMPLE = readFileSync(path.join(APP_DIR, 'sample/request.json'));

/**
 * The example app as real pods (containers through dockerd, pulled from the real registry),
 * with three models: the stable one, one retrained the same way (another seed), and one trained
 * on shuffled labels. The canary analysis must tell them apart.
 */
describe('canary analysis with the example app running as real pods', () => {
  const build = new BuildStack();
  let deploy: DeployStack;
  let workspace: string;
  const images: Record<'stable' | 'retrained' | 'shuffled', string> = {
    stable: '',
    retrained: '',
    shuffled: '',
  };

  beforeAll(async () => {
    await build.start();
    deploy = new DeployStack(
      {
        containers: { registry: { server: build.registry.host, ...REGISTRY_USER } },
        // The API server throttles the pod proxy (429 + Retry-After) beyond 3 requests at once.
        proxyMaxInFlight: 3,
        loadBalancerDelayMs: 100,
      },
      { identity: { oidc: build.oidc, entra: build.entra } },
    );
    await deploy.start();
    deploy.kube.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });
    const [stable, retrained, shuffled] = await Promise.all([
      trainedModel({}),
      trainedModel({ seed: 1 }),
      trainedModel({ shuffleLabels: true, maxIter: 100 }),
    ]);
    const base = await pushAppBase(build);
    images.stable = await appImage(build, base, stable.dir, '1'.repeat(40));
    images.retrained = await appImage(build, base, retrained.dir, '2'.repeat(40));
    images.shuffled = await appImage(build, base, shuffled.dir, '3'.repeat(40));
  });
  afterAll(async () => {
    await deploy?.stop();
    await build.stop();
  });
  beforeEach(() => {
    workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'));
    // The example's manifests, naming this registry (as a user names theirs), and its samples.
    cpSync(path.join(APP_DIR, 'k8s'), path.join(workspace, 'k8s'), { recursive: true });
    const file = path.join(workspace, 'k8s', 'deployment.yaml');
    writeFileSync(
      file,
      readFileSync(file, 'utf8').replace('myacr.azurecr.io/', `${build.registry.host}/`),
    );
    cpSync(path.join(APP_DIR, 'sample'), path.join(workspace, 'sample'), { recursive: true });
  });
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  const run = (inputs: Record<string, string>) =>
    deploy.runDeploy({ namespace: NAMESPACE, ...inputs }, workspace);
  const analysed = (image: string) =>
    run({
      strategy: 'canary',
      images: image,
      'analysis-requests': 'sample/analysis.jsonl',
      'analysis-field': 'results[0].label',
      'auto-promote': 'true',
    });
  const ok = (result: ActionRun) => {
    expect(errorLines(result)).toEqual([]);
    expect(result.exitCode).toBe(0);
    return result;
  };
  const deployment = (name: string) => deploy.kube.get('Deployment', NAMESPACE, name);
  const stablePods = () =>
    deploy.kube
      .list('Pod', NAMESPACE)
      .filter(
        (pod) =>
          pod.metadata.name.startsWith('image-classifier-') &&
          !/-(canary|baseline)-/.test(pod.metadata.name),
      )
      .map(
        (pod) => `${pod.metadata.name} restarts=${pod.status.containerStatuses?.[0]?.restartCount}`,
      )
      .sort();

  it('promotes a retrained model, rejects one trained on shuffled labels, and never stops serving', async () => {
    const first = ok(await run({ images: images.stable }));
    const [address] = JSON.parse(first.outputs['service-endpoints']) as string[];
    expect(address).toMatch(/^127\./);
    const modelOf = async () =>
      ((await (await fetch(`http://${address}/version`)).json()) as { model: { sha256: string } })
        .model.sha256;
    const stableModel = await modelOf();

    const retrained = ok(await analysed(images.retrained));
    expect(retrained.outputs.verdict).toBe('pass');
    const passed = JSON.parse(retrained.outputs.analysis);
    expect(passed.samples).toBe(200);
    expect(passed.agreement).toBeGreaterThanOrEqual(0.95);
    expect(passed.candidate.accuracy).toBeGreaterThan(0.9);
    expect(passed.stable.accuracy).toBeGreaterThan(0.9);
    expect(passed.candidate.pods).toEqual([expect.stringMatching(/^image-classifier-canary-/)]);
    expect(passed.stable.pods).toEqual([expect.stringMatching(/^image-classifier-baseline-/)]);
    // The API server throttled the pod proxy; those requests were sent again, not counted.
    expect(passed.throttled).toBeGreaterThan(0);
    expect(deploy.kube.proxyCounts.throttled).toBeGreaterThan(0);
    expect(passed.candidate.errors).toBe(0);
    // The cluster token went with every proxied request, and never into the log.
    const printed = `${retrained.stdout}\n${retrained.stderr}`
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n');
    expect(deploy.kube.bearerTokens.size).toBeGreaterThan(0);
    for (const token of deploy.kube.bearerTokens) expect(printed).not.toContain(token);
    expect(retrained.summary).toContain(
      '#### Analysis: pass (200 samples, field `results[0].label`)',
    );
    expect(retrained.summary).toMatch(
      /\| Agreement with baseline \| — \| 9\d\.\d % \(\d+ of 200\) \| ≥ 90 % \| pass \|/,
    );
    expect(retrained.summary).toContain('### Canary deploy: analysis pass, promoted');
    expect(deployment('image-classifier')!.spec.template.spec.containers[0].image).toBe(
      images.retrained,
    );
    expect(deployment('image-classifier-canary')).toBeUndefined();
    expect(deployment('image-classifier-baseline')).toBeUndefined();
    const retrainedModel = await modelOf();
    expect(retrainedModel).not.toBe(stableModel);

    // Hammer the Service's endpoint through the whole canary of the broken model.
    const before = stablePods();
    const answers: Array<{ status: number; model?: string }> = [];
    let polling = true;
    const poller = (async () => {
      while (polling) {
        try {
          const response = await fetch(`http://${address}/score`, {
            method: 'POST',
            headers: { 'content-type': 'application/json' },
            body: SAMPLE,
          });
          const body = (await response.json()) as { model_sha256?: string };
          answers.push({ status: response.status, model: body.model_sha256 });
        } catch (error) {
          answers.push({ status: 0, model: String(error) });
        }
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
    })();
    const shuffled = await analysed(images.shuffled);
    polling = false;
    await poller;

    expect(shuffled.exitCode).toBe(1);
    expect(errorLines(shuffled).join('\n')).toMatch(
      /The analysis failed \(agreement, accuracy\): the canary answers worse than the stable version, so it was rejected and removed; the stable version kept serving\./,
    );
    expect(shuffled.outputs.verdict).toBe('fail');
    const failed = JSON.parse(shuffled.outputs.analysis);
    expect(failed.agreement).toBeLessThan(0.3);
    expect(failed.candidate.accuracy).toBeLessThan(0.3);
    expect(failed.candidate.errors).toBe(0);
    expect(failed.disagreementCount).toBeGreaterThan(140);
    expect(shuffled.summary).toContain('### Canary deploy: analysis fail, rejected');
    expect(shuffled.summary).toMatch(
      /\| Agreement with baseline \| — \| \d+\.\d % .*\| \*\*fail\*\* \|/,
    );
    expect(shuffled.summary).toMatch(
      /\| \d+ \| digits-\d+ \| `"\d \w+"` \| `"\d \w+"` \| `"\d \w+"` \|/,
    );
    expect(deployment('image-classifier-canary')).toBeUndefined();
    expect(deployment('image-classifier-baseline')).toBeUndefined();
    expect(deployment('image-classifier')!.spec.template.spec.containers[0].image).toBe(
      images.retrained,
    );
    // The stable pods ran throughout, untouched, and every request got an answer.
    expect(stablePods()).toEqual(before);
    expect(answers.length).toBeGreaterThan(20);
    expect(answers.filter((a) => a.status !== 200)).toEqual([]);
    expect(answers.at(-1)!.model).toBe(retrainedModel);
    expect(await modelOf()).toBe(retrainedModel);
  });

  it('runs pods for real: a missing image is ErrImagePull, an exit is CrashLoopBackOff with its logs', async () => {
    ok(await run({ images: images.stable }));
    const missing = `${build.registry.host}/ai/image-classifier@sha256:${'0'.repeat(64)}`;
    const failuresBefore = deploy.kube.podFailures.length;
    const pull = await run({ images: missing, timeout: '2m' });
    expect(pull.exitCode).toBe(1);
    expect(errorLines(pull).join('\n')).toMatch(
      /container image-classifier: (ErrImagePull|ImagePullBackOff): .*Rolled back Deployment\/image-classifier/,
    );
    // dockerd really tried: the registry answered that the manifest does not exist.
    expect(deploy.kube.podFailures.slice(failuresBefore)[0]).toMatchObject({
      reason: 'ErrImagePull',
      message: expect.stringMatching(/failed to pull image ".*0000": .*manifest unknown/),
    });

    const deploymentFile = path.join(workspace, 'k8s', 'deployment.yaml');
    writeFileSync(
      deploymentFile,
      readFileSync(deploymentFile, 'utf8').replace(
        '          ports:\n',
        `          command: ["python3", "-c", "print('loading the model'); import sys; sys.exit(3)"]\n          ports:\n`,
      ),
    );
    const crash = await run({ images: images.stable, timeout: '2m' });
    expect(crash.exitCode).toBe(1);
    expect(errorLines(crash).join('\n')).toMatch(
      /CrashLoopBackOff: back-off \d+s restarting failed container=image-classifier .*\(last exit code 3, Error\).*Last log lines: loading the model/,
    );
    expect(
      deployment('image-classifier')!.spec.template.spec.containers[0].command,
    ).toBeUndefined();
  });
});
