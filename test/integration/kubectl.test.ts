import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { DeployStack } from '../support/deploy-stack';
import { REPO_ROOT } from '../support/run-action';

const run = promisify(execFile);

/**
 * Every real kubectl on this machine: Debian's kubernetes-client (1.20), installed by
 * scripts/setup.d/40-kubectl.sh (unpacked under .local where another package owns
 * /usr/bin/kubectl), and whatever other kubectl is on PATH.
 */
function kubectls(): string[] {
  const candidates = [
    path.join(REPO_ROOT, '.local/kubernetes-client/usr/bin/kubectl'),
    ...(process.env.PATH ?? '').split(':').map((dir) => path.join(dir, 'kubectl')),
  ];
  return [
    ...new Set(candidates.filter((file) => existsSync(file)).map((file) => realpathSync(file))),
  ];
}

describe('the Kubernetes API server double, checked with the real kubectl', () => {
  const stack = new DeployStack();
  let dir: string;
  const binaries = kubectls();

  beforeAll(async () => {
    await stack.start();
    dir = mkdtempSync(path.join(tmpdir(), 'kubectl-'));
    stack.kube.seed(
      {
        apiVersion: 'apps/v1',
        kind: 'Deployment',
        metadata: { name: 'web', namespace: 'default' },
        spec: {
          replicas: 2,
          selector: { matchLabels: { app: 'web' } },
          template: {
            metadata: { labels: { app: 'web' } },
            spec: { containers: [{ name: 'app', image: 'registry.local:5000/ai-app:1.0' }] },
          },
        },
      },
      'deploy-aks',
    );
    // Wait for the simulated controller to bring both pods up.
    for (
      let i = 0;
      i < 100 && stack.kube.get('Deployment', 'default', 'web')?.status?.availableReplicas !== 2;
      i++
    ) {
      await new Promise((resolve) => setTimeout(resolve, 50));
    }
  });
  afterAll(async () => {
    await stack.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('finds a kubectl to check against (scripts/setup.sh installs Debian kubernetes-client)', () => {
    expect(binaries.length).toBeGreaterThan(0);
  });

  const kubectl = async (binary: string, args: string[]) => {
    const kubeconfig = path.join(dir, 'config');
    writeFileSync(kubeconfig, stack.adminKubeconfig());
    return run(binary, ['--kubeconfig', kubeconfig, ...args], {
      env: { PATH: process.env.PATH ?? '', HOME: dir },
      timeout: 60_000,
    });
  };

  it.each(kubectls().map((binary) => [binary]))(
    '%s get deployments prints the rollout columns',
    async (binary) => {
      const { stdout } = await kubectl(binary, ['get', 'deployments']);
      const lines = stdout.trim().split('\n');
      // kubectl discovered the kind, then listed it asking for a server-side Table.
      expect(stack.kube.requests.at(-1)!.path).toMatch(
        /^\/apis\/apps\/v1\/namespaces\/default\/deployments\?limit=500$/,
      );
      expect(stack.kube.requests.at(-1)!.accept).toMatch(/as=Table/);
      expect(lines[0]).toMatch(/^NAME\s+READY\s+UP-TO-DATE\s+AVAILABLE\s+AGE$/);
      expect(lines[1]).toMatch(/^web\s+2\/2\s+2\s+2\s+\d+s$/);
    },
  );

  it.each(kubectls().map((binary) => [binary]))(
    '%s get deployment -o json returns the stored object',
    async (binary) => {
      const { stdout } = await kubectl(binary, ['get', 'deployment', 'web', '-o', 'json']);
      const object = JSON.parse(stdout);
      expect(object.kind).toBe('Deployment');
      expect(object.status.availableReplicas).toBe(2);
      expect(object.metadata.annotations['deployment.kubernetes.io/revision']).toBe('1');
    },
  );

  it.each(kubectls().map((binary) => [binary]))(
    '%s get pods and replicasets by short name',
    async (binary) => {
      const pods = await kubectl(binary, ['get', 'po', '-l', 'app=web']);
      expect(pods.stdout.trim().split('\n').slice(1)).toEqual([
        expect.stringMatching(/^web-\w+-\w+\s+1\/1\s+Running\s+0\s+\d+s$/),
        expect.stringMatching(/^web-\w+-\w+\s+1\/1\s+Running\s+0\s+\d+s$/),
      ]);
      const sets = await kubectl(binary, ['get', 'rs', '-o', 'name']);
      expect(sets.stdout.trim()).toMatch(/^replicaset\.apps\/web-\w+$/);
    },
  );
});
