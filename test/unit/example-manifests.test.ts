import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import * as yaml from 'js-yaml';

/** The example app's Kubernetes manifests and Dockerfile agree with each other and the app. */
describe('image-classifier manifests', () => {
  const dir = path.join(__dirname, '../../examples/image-classifier');
  const read = (file: string) => readFileSync(path.join(dir, file), 'utf8');
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const deployment = yaml.load(read('k8s/deployment.yaml')) as any;
  // eslint-disable-next-line @typescript-eslint/no-explicit-any
  const service = yaml.load(read('k8s/service.yaml')) as any;
  const pod = deployment.spec.template.spec;
  const [container] = pod.containers;
  const dockerfile = read('Dockerfile');

  it("names the pipeline's repository, so deploy-aks can put the pushed image in its place", () => {
    const caller = yaml.load(
      readFileSync(path.join(__dirname, '../../examples/workflows/image-classifier.yml'), 'utf8'),
      // eslint-disable-next-line @typescript-eslint/no-explicit-any
    ) as any;
    const repository = caller.jobs.pipeline.with.repository;
    const [registry, ...segments] = String(container.image).split(':')[0].split('/');
    expect(registry).toMatch(/\./); // a registry host, not a Docker Hub name
    expect(segments.join('/')).toBe(repository);
  });

  it('probes /health on the port the image listens on', () => {
    const port = container.ports.find((p: { name: string }) => p.name === 'http');
    expect(dockerfile).toContain(`EXPOSE ${port.containerPort}`);
    expect(dockerfile).toContain(`PORT=${port.containerPort}`);
    for (const probe of ['readinessProbe', 'livenessProbe', 'startupProbe']) {
      expect(container[probe].httpGet).toEqual({ path: '/health', port: 'http' });
    }
  });

  it('requests resources and runs as the image user, not root', () => {
    expect(container.resources.requests).toEqual({
      cpu: expect.any(String),
      memory: expect.any(String),
    });
    expect(pod.securityContext.runAsNonRoot).toBe(true);
    expect(dockerfile).toContain(
      `USER ${pod.securityContext.runAsUser}:${pod.securityContext.runAsGroup}`,
    );
  });

  it('loads the model from where the Dockerfile puts it', () => {
    const modelDir = container.env.find((e: { name: string }) => e.name === 'MODEL_DIR').value;
    expect(dockerfile).toContain(`COPY model/ ${modelDir}/`);
    expect(dockerfile).toMatch(/^ARG BASE_IMAGE=ai-app-base:bookworm\nFROM \$\{BASE_IMAGE\}$/m);
  });

  it('exposes the pods through a LoadBalancer Service', () => {
    expect(service.spec.type).toBe('LoadBalancer');
    expect(service.spec.selector).toEqual(deployment.spec.selector.matchLabels);
    expect(deployment.spec.template.metadata.labels).toMatchObject(service.spec.selector);
    expect(service.spec.ports[0].targetPort).toBe('http');
  });
});
