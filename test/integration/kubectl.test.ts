import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { DeployStack } from '../support/deploy-stack';
import { kubectl as runKubectl, kubectlBinaries } from '../support/kubectl';

describe('the Kubernetes API server double, checked with the real kubectl', () => {
  const stack = new DeployStack();
  let dir: string;
  const binaries = kubectlBinaries();

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
    return runKubectl(binary, kubeconfig, dir, args);
  };

  it.each(kubectlBinaries().map((binary) => [binary]))(
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

  it.each(kubectlBinaries().map((binary) => [binary]))(
    '%s get deployment -o json returns the stored object',
    async (binary) => {
      const { stdout } = await kubectl(binary, ['get', 'deployment', 'web', '-o', 'json']);
      const object = JSON.parse(stdout);
      expect(object.kind).toBe('Deployment');
      expect(object.status.availableReplicas).toBe(2);
      expect(object.metadata.annotations['deployment.kubernetes.io/revision']).toBe('1');
    },
  );

  it.each(kubectlBinaries().map((binary) => [binary]))(
    '%s rollout status finishes through list-then-watch',
    async (binary) => {
      const { stdout } = await kubectl(binary, [
        'rollout',
        'status',
        'deployment/web',
        '--timeout=20s',
      ]);
      expect(stdout).toContain('deployment "web" successfully rolled out');
      expect(stack.kube.requests.at(-1)!.path).toMatch(/watch=true/);
    },
  );

  it.each(kubectlBinaries().map((binary) => [binary]))(
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
