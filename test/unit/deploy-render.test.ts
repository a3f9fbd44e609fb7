import { MemoryLogger } from '../../src/common/logger';
import { ConfigurationError } from '../../src/common/errors';
import { repositoryOf } from '../../src/common/image-reference';
import { parseImage, parseImageInputs } from '../../src/deploy-aks/images';
import { parseManifest, type ManifestObject } from '../../src/deploy-aks/manifests';
import {
  chooseNamespace,
  parseKeyValues,
  render,
  type RenderOptions,
} from '../../src/deploy-aks/render';

const DIGEST = `sha256:${'a'.repeat(64)}`;

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- manifests are read by path in assertions
type Json = Record<string, any>;

const podSpec = (object: unknown): Json => (object as Json).spec.template.spec;

const options = (overrides: Partial<RenderOptions> = {}): RenderOptions => ({
  images: [],
  labels: {},
  annotations: {},
  provenance: {},
  ...overrides,
});

const manifests = (text: string): ManifestObject[] => parseManifest(text, 'k8s/app.yaml');

const deployment = (image: string, init?: string) => `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  selector:
    matchLabels: { app: web }
  template:
    metadata:
      labels: { app: web }
    spec:
${init ? `      initContainers:\n        - name: init\n          image: ${init}\n` : ''}      containers:
        - name: app
          image: ${image}
        - name: sidecar
          image: docker.io/library/busybox:1.36
`;

describe('image references', () => {
  it('splits registry (with port), path, tag and digest', () => {
    expect(parseImage(`registry.local:5000/team/app:1.2@${DIGEST}`)).toEqual({
      raw: `registry.local:5000/team/app:1.2@${DIGEST}`,
      registry: 'registry.local:5000',
      repository: 'team/app',
      tag: '1.2',
      digest: DIGEST,
    });
    expect(repositoryOf(parseImage('nginx')!)).toBe('docker.io/library/nginx');
    expect(repositoryOf(parseImage('localhost/app:dev')!)).toBe('localhost/app');
    expect(repositoryOf(parseImage('myacr.azurecr.io/app')!)).toBe('myacr.azurecr.io/app');
    expect(parseImage('Upper/Case')).toBeUndefined();
    expect(parseImage('app@sha256:short')).toBeUndefined();
  });

  it('accepts full references and rejects untagged or duplicate ones, naming the input', () => {
    expect(parseImageInputs([`myacr.azurecr.io/app@${DIGEST}`])[0].digest).toBe(DIGEST);
    expect(() => parseImageInputs(['myacr.azurecr.io/app'])).toThrow(
      /Invalid images entry 'myacr.azurecr.io\/app'. Expected a tag or a digest/,
    );
    expect(() => parseImageInputs(['not a ref'])).toThrow(ConfigurationError);
    expect(() => parseImageInputs(['r.io/app:1', 'r.io/app:2'])).toThrow(
      /name the same repository/,
    );
  });
});

describe('rendering', () => {
  const render1 = (text: string, opts: Partial<RenderOptions> = {}) =>
    render(manifests(text), options(opts), new MemoryLogger());

  it('replaces images by repository, tags and digests alike, in init containers too', () => {
    const rendered = render1(
      deployment('registry.local:5000/app:latest', 'registry.local:5000/app'),
      {
        images: parseImageInputs([`registry.local:5000/app@${DIGEST}`]),
      },
    );
    const spec = podSpec(rendered.objects[0].object);
    expect(spec.initContainers[0].image).toBe(`registry.local:5000/app@${DIGEST}`);
    expect(spec.containers[0].image).toBe(`registry.local:5000/app@${DIGEST}`);
    expect(spec.containers[1].image).toBe('docker.io/library/busybox:1.36');
    expect(rendered.replacements).toHaveLength(2);
  });

  it('does not replace an image from another registry or port with the same path', () => {
    const rendered = render1(deployment('registry.local:5001/app:1', 'other.io/app:1'), {
      images: parseImageInputs([`registry.local:5000/app@${DIGEST}`]),
      allowUnmatchedImages: true,
    });
    const spec = podSpec(rendered.objects[0].object);
    expect(spec.containers[0].image).toBe('registry.local:5001/app:1');
    expect(spec.initContainers[0].image).toBe('other.io/app:1');
    expect(rendered.unusedImages).toEqual([`registry.local:5000/app@${DIGEST}`]);
  });

  it('matches Docker Hub short names to their full repository', () => {
    const rendered = render1(deployment('busybox'), { images: parseImageInputs(['busybox:1.37']) });
    const spec = podSpec(rendered.objects[0].object);
    expect(spec.containers.map((c: { image: string }) => c.image)).toEqual([
      'busybox:1.37',
      'busybox:1.37',
    ]);
  });

  it('fails on an images entry that matched no container, naming what the manifests use', () => {
    // The example manifest names myacr.azurecr.io: a user's deploy must not "succeed" with the
    // old image still running.
    expect(() =>
      render(
        manifests(deployment('myacr.azurecr.io/ai/app:1')),
        options({ images: parseImageInputs([`contoso.azurecr.io/ai/app@${DIGEST}`]) }),
        new MemoryLogger(),
      ),
    ).toThrow(
      new RegExp(
        `images entry 'contoso\\.azurecr\\.io/ai/app@${DIGEST}' matched no container: no manifest ` +
          `uses repository contoso\\.azurecr\\.io/ai/app\\. The manifests' containers use ` +
          `'myacr\\.azurecr\\.io/ai/app:1'.*allow-unmatched-images: true`,
      ),
    );
  });

  it('only warns about it with allow-unmatched-images', () => {
    const logger = new MemoryLogger();
    render(
      manifests(deployment('r.io/app:1')),
      options({ images: parseImageInputs(['r.io/other:2']), allowUnmatchedImages: true }),
      logger,
    );
    expect(logger.lines).toContain(
      "warning: images entry 'r.io/other:2' matched no container: no manifest uses repository r.io/other.",
    );
  });

  it('replaces images in CronJobs and Pods', () => {
    const rendered = render1(
      `apiVersion: batch/v1
kind: CronJob
metadata: { name: retrain }
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{ name: job, image: "r.io/app:old" }]
---
apiVersion: v1
kind: Pod
metadata: { name: probe }
spec:
  containers: [{ name: p, image: "r.io/app" }]
`,
      { images: parseImageInputs([`r.io/app@${DIGEST}`]) },
    );
    const [cron, pod] = rendered.objects.map((o) => o.object as unknown as Json);
    expect(cron.spec.jobTemplate.spec.template.spec.containers[0].image).toBe(`r.io/app@${DIGEST}`);
    expect(pod.spec.containers[0].image).toBe(`r.io/app@${DIGEST}`);
  });

  it('sets the namespace on namespaced kinds only, and refuses a conflicting one', () => {
    const text = `apiVersion: v1
kind: Namespace
metadata: { name: ai }
---
apiVersion: v1
kind: ConfigMap
metadata: { name: c }
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: { name: reader }
rules: []
`;
    const rendered = render1(text);
    expect(rendered.namespace).toBe('ai');
    expect(rendered.objects.map((o) => o.object.metadata.namespace)).toEqual([
      undefined,
      undefined,
      'ai',
    ]);
    expect(render1(text, { namespace: 'prod' }).objects[2].object.metadata.namespace).toBe('prod');
    const pinned = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c, namespace: team }\n';
    expect(() => render1(pinned, { namespace: 'prod' })).toThrow(
      "k8s/app.yaml (document 1, line 1): ConfigMap/c is in namespace 'team', but the namespace input is 'prod'.",
    );
  });

  it('chooses the namespace: input, else the one the manifests name, else default', () => {
    const cm = (ns?: string) =>
      manifests(
        `apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c${ns ? `, namespace: ${ns}` : ''} }\n`,
      );
    expect(chooseNamespace(cm('team'), 'prod')).toBe('prod');
    expect(chooseNamespace(cm('team'))).toBe('team');
    expect(
      chooseNamespace([
        ...cm('a'),
        ...manifests('apiVersion: v1\nkind: ConfigMap\nmetadata: { name: d, namespace: b }\n'),
      ]),
    ).toBe('default');
    expect(chooseNamespace(cm())).toBe('default');
  });

  it('orders namespaces, config, services, then workloads', () => {
    const rendered = render1(`${deployment('r.io/app:1')}---
apiVersion: v1
kind: Service
metadata: { name: web }
spec: { ports: [{ port: 80 }] }
---
apiVersion: v1
kind: Secret
metadata: { name: s }
---
apiVersion: v1
kind: Namespace
metadata: { name: ns }
`);
    expect(rendered.objects.map((o) => o.object.kind)).toEqual([
      'Namespace',
      'Secret',
      'Service',
      'Deployment',
    ]);
  });

  it('adds labels, annotations and provenance, the model digest on workloads only', () => {
    const rendered = render1(
      `${deployment(`r.io/app@${DIGEST}`)}---\napiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\n`,
      {
        labels: { team: 'vision' },
        annotations: { owner: 'ml' },
        provenance: {
          commit: 'abc',
          runUrl: 'https://github.com/o/r/actions/runs/1',
          modelDigest: 'f'.repeat(64),
        },
      },
    );
    const [config, workload] = rendered.objects.map((o) => o.object.metadata);
    expect(workload.labels).toEqual({ team: 'vision' });
    expect(workload.annotations).toEqual({
      owner: 'ml',
      'ai-app-delivery.github.io/commit': 'abc',
      'ai-app-delivery.github.io/run-url': 'https://github.com/o/r/actions/runs/1',
      'ai-app-delivery.github.io/images': `r.io/app@${DIGEST}`,
      'ai-app-delivery.github.io/model-digest': 'f'.repeat(64),
    });
    expect(config.annotations).not.toHaveProperty('ai-app-delivery.github.io/model-digest');
  });

  it('reports schema errors with file, document and field', () => {
    const bad = deployment('r.io/app:1').replace(
      'spec:\n  selector',
      'spec:\n  replicas: "two"\n  selector',
    );
    expect(() =>
      render1(`apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\n---\n${bad}`),
    ).toThrow(
      /k8s\/app\.yaml \(document 2, line 5\) Deployment\/web: spec\.replicas must be integer/,
    );
    expect(() => render1('apiVersion: apps/v1\nkind: Deploymnet\nmetadata: { name: x }\n')).toThrow(
      /document 1, line 1\) apps\/v1 has no kind Deploymnet/,
    );
    // Names an object's own properties have are not kinds (nor API groups).
    expect(() => render1('apiVersion: v1\nkind: constructor\nmetadata: { name: x }\n')).toThrow(
      /document 1, line 1\) v1 has no kind constructor/,
    );
  });

  it('lets custom resources through to the API server', () => {
    const logger = new MemoryLogger();
    const rendered = render(
      manifests('apiVersion: example.com/v1\nkind: Widget\nmetadata: { name: w }\n'),
      options(),
      logger,
    );
    expect(rendered.objects[0].object.metadata.namespace).toBe('default');
    expect(logger.lines.join('\n')).toMatch(
      /Widget\/w: no bundled schema for apiVersion example\.com\/v1/,
    );
    const inherited = new MemoryLogger();
    render(
      manifests('apiVersion: toString\nkind: Widget\nmetadata: { name: w }\n'),
      options(),
      inherited,
    );
    expect(inherited.lines.join('\n')).toMatch(/no bundled schema for apiVersion toString/);
  });

  it('refuses an object defined twice', () => {
    const cm = 'apiVersion: v1\nkind: ConfigMap\nmetadata: { name: c }\n';
    expect(() => render1(`${cm}---\n${cm}`)).toThrow(
      /k8s\/app\.yaml \(document 2, line 5\): ConfigMap\/c is defined twice: here and in k8s\/app\.yaml \(document 1, line 1\)/,
    );
  });

  it('parses key=value metadata and names the input on a bad line', () => {
    expect(parseKeyValues('labels', ['app.kubernetes.io/part-of = ai', 'tier=web'])).toEqual({
      'app.kubernetes.io/part-of': 'ai',
      tier: 'web',
    });
    expect(() => parseKeyValues('labels', ['no equals'])).toThrow(
      "Invalid labels entry 'no equals'.",
    );
  });
});

describe('manifest parsing', () => {
  it('reports YAML syntax errors with file and line', () => {
    expect(() => parseManifest('a: 1\n---\nkind: ConfigMap\n  bad: indent\n', 'x.yaml')).toThrow(
      /YAML syntax error in x\.yaml at line 3, column \d+: Nested mappings/,
    );
  });

  it('skips empty documents, flattens Lists, and needs apiVersion, kind and name', () => {
    const objects = parseManifest(
      '---\n# only a comment\n---\napiVersion: v1\nkind: List\nitems:\n  - { apiVersion: v1, kind: ConfigMap, metadata: { name: a } }\n  - { apiVersion: v1, kind: ConfigMap, metadata: { name: b } }\n',
      'l.yaml',
    );
    expect(objects.map((o) => [o.object.metadata.name, o.source.document])).toEqual([
      ['a', 2],
      ['b', 2],
    ]);
    expect(() => parseManifest('kind: ConfigMap\nmetadata: { name: a }\n', 'm.yaml')).toThrow(
      'm.yaml (document 1, line 1): the object lacks apiVersion',
    );
    expect(() => parseManifest('- a\n- b\n', 's.yaml')).toThrow(
      's.yaml (document 1, line 1): this document is a list, not a Kubernetes object.',
    );
  });
});
