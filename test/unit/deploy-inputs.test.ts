import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { load } from 'js-yaml';
import { Inputs } from '../../src/common/inputs';
import { MemoryLogger } from '../../src/common/logger';
import { readSettings, parseDuration } from '../../src/deploy-aks/inputs';
import { connectionFromKubeconfig, AKS_SERVER_APP_ID } from '../../src/deploy-aks/kube/connection';
import { expandManifestPaths } from '../../src/deploy-aks/manifests';
import { progressiveOutputs } from '../../src/deploy-aks/report';

const ROOT = path.resolve(__dirname, '../..');
const SUBSCRIPTION = '3f2c1a9e-5b7d-4e8f-a1c2-9d0e7f6b5a43';

interface ActionYaml {
  inputs: Record<string, { required?: boolean; default?: string; description?: string }>;
  outputs: Record<string, unknown>;
  runs: { using: string; main: string };
}

const yaml = load(
  readFileSync(path.join(ROOT, 'action-deploy-aks', 'action.yml'), 'utf8'),
) as ActionYaml;

const aks = {
  'resource-group': 'rg',
  'cluster-name': 'aks',
  'subscription-id': SUBSCRIPTION,
  manifests: 'k8s/',
};

function read(values: Record<string, string>, env: NodeJS.ProcessEnv = {}) {
  const inputs = new Inputs((name) => values[name] ?? '');
  const logger = new MemoryLogger();
  return { settings: readSettings(inputs, env, logger), requested: inputs.requested, logger };
}

describe('action-deploy-aks/action.yml', () => {
  it('runs the committed bundle on node24', () => {
    expect(yaml.runs).toEqual({ using: 'node24', main: '../dist/deploy-aks/index.js' });
  });

  it('declares every input the action reads, and the action reads every declared input', () => {
    const workspace = mkdtempSync(path.join(tmpdir(), 'deploy-inputs-'));
    try {
      writeFileSync(path.join(workspace, 'samples.jsonl'), '{"request": {}}\n');
      const canary = read(
        {
          ...aks,
          strategy: 'canary',
          'analysis-requests': 'samples.jsonl',
          'auto-promote': 'true',
        },
        { GITHUB_WORKSPACE: workspace },
      );
      const requested = new Set([...read(aks).requested, ...canary.requested]);
      expect([...requested].sort()).toEqual(Object.keys(yaml.inputs).sort());
    } finally {
      rmSync(workspace, { recursive: true, force: true });
    }
  });

  it('documents the same defaults the code applies', () => {
    const { settings } = read(aks);
    expect(parseDuration(yaml.inputs.timeout.default!)).toBe(settings.timeoutMs);
    expect(parseDuration(yaml.inputs['failure-grace'].default!)).toBe(settings.failureGraceMs);
    expect(yaml.inputs['rollback-on-failure'].default).toBe(String(settings.rollbackOnFailure));
    expect(yaml.inputs['dry-run'].default).toBe(String(settings.dryRun));
    expect(yaml.inputs['force-conflicts'].default).toBe(String(settings.forceConflicts));
    expect(yaml.inputs.admin.default).toBe('false');
    expect(yaml.inputs.audience.default).toBe(settings.identity.audience);
    expect(yaml.inputs.strategy.default).toBe(settings.strategy);
    expect(yaml.inputs.action.default).toBe(settings.action);
    expect(yaml.inputs['auto-promote'].default).toBe(String(settings.autoPromote));
    expect(settings.canaryReplicas).toEqual({ percentage: 20 });
    expect(yaml.inputs.percentage.default).toBeUndefined();
    expect(yaml.inputs.percentage.description).toMatch(/Default 20\./);
  });

  it('documents the analysis defaults the code applies', () => {
    const workspace = mkdtempSync(path.join(tmpdir(), 'deploy-inputs-'));
    try {
      writeFileSync(path.join(workspace, 'samples.jsonl'), '{"request": {}}\n');
      const { settings } = read(
        { ...aks, strategy: 'canary', 'analysis-requests': 'samples.jsonl' },
        { GITHUB_WORKSPACE: workspace },
      );
      const thresholds = settings.analysis!.thresholds;
      expect(Number(yaml.inputs['analysis-max-error-rate'].default)).toBe(thresholds.maxErrorRate);
      expect(Number(yaml.inputs['analysis-min-agreement'].default)).toBe(thresholds.minAgreement);
      expect(Number(yaml.inputs['analysis-min-accuracy'].default)).toBe(thresholds.minAccuracy);
      expect(Number(yaml.inputs['analysis-max-accuracy-drop'].default)).toBe(
        thresholds.maxAccuracyDrop,
      );
      expect(Number(yaml.inputs['analysis-max-latency-ratio'].default)).toBe(
        thresholds.maxLatencyRatio,
      );
      expect(yaml.inputs['analysis-path'].default).toBe(settings.analysis!.path);
    } finally {
      rmSync(workspace, { recursive: true, force: true });
    }
  });

  it('declares the outputs main.ts sets', () => {
    const main = readFileSync(path.join(ROOT, 'src/deploy-aks/main.ts'), 'utf8');
    const set = [...main.matchAll(/core\.setOutput\('([^']+)'/g)].map((match) => match[1]);
    // A canary or blue-green action sets these (through a loop), and the ones above.
    const progressive = Object.keys(
      progressiveOutputs({
        strategy: 'canary',
        action: 'deploy',
        namespace: 'default',
        phases: [],
        pairs: [],
        removed: [],
        routed: [],
      }),
    );
    expect(main).toContain('progressiveOutputs(progressive)');
    expect([...new Set([...set, ...progressive])].sort()).toEqual(Object.keys(yaml.outputs).sort());
  });
});

describe('deploy-aks settings', () => {
  it('takes the subscription from AZURE_SUBSCRIPTION_ID and the ARM endpoint from the cloud', () => {
    const { settings } = read(
      { ...aks, 'subscription-id': '' },
      { AZURE_SUBSCRIPTION_ID: SUBSCRIPTION },
    );
    expect(settings.cluster).toEqual({
      kind: 'aks',
      cluster: { subscriptionId: SUBSCRIPTION, resourceGroup: 'rg', name: 'aks', admin: false },
      armEndpoint: 'https://management.azure.com',
    });
    const china = read({ ...aks, cloud: 'AzureChinaCloud' }).settings.cluster;
    expect(china.kind === 'aks' && china.armEndpoint).toBe('https://management.chinacloudapi.cn');
  });

  it.each([
    [{ ...aks, 'resource-group': '' }, /'resource-group' and 'cluster-name' are required/],
    [{ ...aks, 'subscription-id': 'nope' }, /Invalid subscription-id 'nope'. Expected a GUID/],
    [{ ...aks, kubeconfig: 'apiVersion: v1\n' }, /Set either 'kubeconfig' or 'resource-group'/],
    [{ ...aks, manifests: '' }, /Input 'manifests' is required/],
    [{ ...aks, namespace: 'Prod' }, /Invalid namespace 'Prod'. Expected a DNS label/],
    [{ ...aks, timeout: 'soon' }, /Invalid timeout 'soon'. Expected a duration such as 10m/],
    [
      { ...aks, 'model-digest': 'xyz' },
      /Invalid model-digest 'xyz'. Expected 64 lowercase hex digits/,
    ],
    [{ ...aks, images: 'r.io/app' }, /Invalid images entry 'r.io\/app'/],
    [{ ...aks, 'dry-run': 'maybe' }, /Invalid dry-run 'maybe'. Expected true or false/],
    [
      { ...aks, strategy: 'rolling' },
      /Invalid strategy 'rolling'. Expected one of: basic, canary, blue-green/,
    ],
    [{ ...aks, action: 'promote' }, /Invalid action 'promote' with strategy 'basic'/],
    [
      { ...aks, strategy: 'canary', percentage: '50' },
      /Invalid percentage '50'. Expected a share of the Service's pods above 0 and below 50/,
    ],
    [{ ...aks, strategy: 'canary', percentage: '0' }, /Invalid percentage '0'/],
    [
      { ...aks, strategy: 'canary', percentage: '10', 'baseline-and-canary-replicas': '2' },
      /Set either baseline-and-canary-replicas '2' or percentage '10', not both/,
    ],
    [
      { ...aks, strategy: 'canary', 'baseline-and-canary-replicas': '0' },
      /Invalid baseline-and-canary-replicas '0'. Expected a whole number from 1 to 100/,
    ],
    [
      { ...aks, strategy: 'blue-green', percentage: '10' },
      /'percentage' applies to strategy canary only/,
    ],
    [
      { ...aks, strategy: 'canary', 'traffic-split-method': 'smi' },
      /Invalid traffic-split-method 'smi'. Expected pod/,
    ],
    [
      { ...aks, strategy: 'blue-green', 'route-method': 'ingress' },
      /Invalid route-method 'ingress'. Expected service/,
    ],
    [
      { ...aks, 'analysis-requests': 'samples.jsonl' },
      /'analysis-requests' needs strategy canary or blue-green with action deploy/,
    ],
    [
      { ...aks, strategy: 'canary', 'analysis-requests': 'missing.jsonl' },
      /Invalid analysis-requests 'missing.jsonl': no such file/,
    ],
    [
      { ...aks, strategy: 'canary', 'auto-promote': 'true' },
      /'auto-promote' needs 'analysis-requests'/,
    ],
    [
      { ...aks, strategy: 'canary', action: 'reject', 'dry-run': 'true' },
      /Invalid dry-run 'true' with action 'reject'/,
    ],
    [
      { ...aks, kubeconfig: 'missing/config', 'resource-group': '', 'cluster-name': '' },
      /Invalid kubeconfig 'missing\/config': no such file/,
    ],
  ])('refuses %j', (values, message) => {
    expect(() => read(values)).toThrow(message);
  });

  describe('the analysis', () => {
    let workspace: string;
    beforeEach(() => (workspace = mkdtempSync(path.join(tmpdir(), 'deploy-inputs-'))));
    afterEach(() => rmSync(workspace, { recursive: true, force: true }));
    const analysis = (values: Record<string, string>, samples = '{"request": {"x": 1}}\n') => {
      writeFileSync(path.join(workspace, 'samples.jsonl'), samples);
      return read(
        { ...aks, strategy: 'canary', 'analysis-requests': 'samples.jsonl', ...values },
        { GITHUB_WORKSPACE: workspace },
      ).settings.analysis!;
    };

    it('reads shares as 0.9 or 90%, the field as a JSON path, and the samples', () => {
      const settings = analysis(
        {
          'analysis-min-agreement': '95%',
          'analysis-max-error-rate': '0.01',
          'analysis-field': 'results[0].label',
          'analysis-port': '8080',
          'analysis-path': '/predict',
        },
        '{"id": "a", "request": {"x": 1}, "expected": "cat"}\n\n{"path": "/health"}\n',
      );
      expect(settings.thresholds.minAgreement).toBe(0.95);
      expect(settings.thresholds.maxErrorRate).toBe(0.01);
      expect(settings.field).toEqual(['results', 0, 'label']);
      expect(settings.port).toBe(8080);
      expect(settings.path).toBe('/predict');
      expect(settings.samples).toEqual([
        { line: 1, id: 'a', method: 'POST', body: '{"x":1}', expected: 'cat', hasExpected: true },
        { line: 3, method: 'GET', path: '/health', hasExpected: false },
      ]);
    });

    it.each([
      [
        { 'analysis-min-agreement': '1.5' },
        /Invalid analysis-min-agreement '1.5'. Expected a share from 0 to 1, such as 0.9 or 90%/,
      ],
      [
        { 'analysis-max-latency-ratio': '0.5' },
        /Invalid analysis-max-latency-ratio '0.5'. Expected a number from 1 to 100/,
      ],
      [
        { 'analysis-field': 'results[x]' },
        /Invalid analysis-field 'results\[x\]'. Expected a JSON path such as label/,
      ],
      [
        { 'analysis-path': 'score' },
        /Invalid analysis-path 'score'. Expected a request path such as \/score/,
      ],
      [
        { 'analysis-port': '70000' },
        /Invalid analysis-port '70000'. Expected a whole number from 1 to 65535/,
      ],
    ])('refuses %j', (values, message) => {
      expect(() => analysis(values)).toThrow(message);
    });

    it.each([
      ['{"request": 1}\nnot json\n', /'samples.jsonl' line 2: not JSON/],
      ['[1, 2]\n', /line 1: not a JSON object/],
      ['{"body": {}}\n', /line 1: unknown key\(s\) body/],
      ['{"expected": "x"}\n', /line 1: it has no "request"/],
      ['{"request": {}, "path": "score"}\n', /line 1: "path" must be a string starting with \//],
      ['\n\n', /the file holds no sample/],
    ])('names the line of a bad sample: %j', (samples, message) => {
      expect(() => analysis({}, samples)).toThrow(message);
    });
  });

  it('masks a kubeconfig given as content before anything else', () => {
    const content = 'apiVersion: v1\nkind: Config\nusers: []\n';
    const { logger, settings } = read({ kubeconfig: content, manifests: 'k8s/' });
    expect(logger.secrets).toContain(content);
    expect(settings.cluster.kind).toBe('kubeconfig');
  });

  it('parses durations', () => {
    expect(parseDuration('10m')).toBe(600_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('90')).toBe(90_000);
    expect(parseDuration('500ms')).toBe(500);
    expect(parseDuration('10 minutes')).toBeUndefined();
  });
});

describe('kubeconfig', () => {
  const config = (user: string) => `apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: https://aks.example:443
    certificate-authority-data: ${Buffer.from('CA PEM').toString('base64')}
contexts:
- name: ctx
  context: { cluster: c, user: u }
current-context: ctx
users:
- name: u
  user:
${user}`;

  it('reads a token user and masks the token', async () => {
    const logger = new MemoryLogger();
    const connection = connectionFromKubeconfig(
      config('    token: s3cr3t-token\n'),
      'test',
      logger,
    );
    expect(connection.server.href).toBe('https://aks.example/');
    expect(connection.ca).toBe('CA PEM');
    expect(await connection.token!()).toBe('s3cr3t-token');
    expect(logger.secrets).toContain('s3cr3t-token');
  });

  it('recognises the kubelogin exec plugin and its server id', () => {
    const exec = `    exec:
      command: kubelogin
      args: [get-token, --server-id, ${AKS_SERVER_APP_ID}, --login, devicecode]
`;
    const connection = connectionFromKubeconfig(config(exec), 'test', new MemoryLogger());
    expect(connection.entraServerId).toBe(AKS_SERVER_APP_ID);
    expect(connection.token).toBeUndefined();
  });

  it('reads the legacy azure auth-provider as the same server application', () => {
    const provider = `    auth-provider:
      name: azure
      config: { apiserver-id: ${AKS_SERVER_APP_ID}, client-id: 80faf920-1908-4b52-b5ef-a8e7bedfc67a, environment: AzurePublicCloud }
`;
    expect(
      connectionFromKubeconfig(config(provider), 'test', new MemoryLogger()).entraServerId,
    ).toBe(AKS_SERVER_APP_ID);
    expect(() =>
      connectionFromKubeconfig(
        config('    auth-provider:\n      name: gcp\n'),
        'test',
        new MemoryLogger(),
      ),
    ).toThrow(/uses the 'gcp' auth-provider/);
  });

  it('refuses other exec plugins, naming them', () => {
    expect(() =>
      connectionFromKubeconfig(
        config('    exec:\n      command: aws\n      args: [eks, get-token]\n'),
        'test',
        new MemoryLogger(),
      ),
    ).toThrow(/exec plugin 'aws', which this action does not run/);
  });
});

describe('manifest paths', () => {
  let dir: string;
  beforeAll(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'manifests-'));
    for (const file of [
      'k8s/a.yaml',
      'k8s/b.yml',
      'k8s/notes.md',
      'k8s/sub/c.yaml',
      'other/d.json',
    ]) {
      const full = path.join(dir, file);
      mkdirSync(path.dirname(full), { recursive: true });
      writeFileSync(full, 'x: 1\n');
    }
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  const rel = (files: string[]) => files.map((file) => path.relative(dir, file));

  it('expands directories recursively, globs, and files, each once', async () => {
    expect(rel(await expandManifestPaths(['k8s'], dir))).toEqual([
      'k8s/a.yaml',
      'k8s/b.yml',
      'k8s/sub/c.yaml',
    ]);
    expect(rel(await expandManifestPaths(['k8s/*.yaml', 'k8s/a.yaml'], dir))).toEqual([
      'k8s/a.yaml',
    ]);
    expect(rel(await expandManifestPaths(['**/*.yaml', '**/*.json'], dir))).toEqual([
      'k8s/a.yaml',
      'k8s/sub/c.yaml',
      'other/d.json',
    ]);
    // An explicitly named file is read whatever its extension.
    expect(rel(await expandManifestPaths(['k8s/notes.md'], dir))).toEqual(['k8s/notes.md']);
  });

  it("follows @actions/glob's rules: ! excludes, [] classes, ? one character", async () => {
    expect(rel(await expandManifestPaths(['k8s', '!k8s/sub'], dir))).toEqual([
      'k8s/a.yaml',
      'k8s/b.yml',
    ]);
    expect(rel(await expandManifestPaths(['**/*.y?ml', '!**/b.yml'], dir))).toEqual([
      'k8s/a.yaml',
      'k8s/sub/c.yaml',
    ]);
    expect(rel(await expandManifestPaths(['k8s/[ab].y*'], dir))).toEqual([
      'k8s/a.yaml',
      'k8s/b.yml',
    ]);
  });

  it('fails on an entry that matches nothing, naming it', async () => {
    await expect(expandManifestPaths(['k8s/*.json'], dir)).rejects.toThrow(
      /Invalid manifests entry 'k8s\/\*\.json': the pattern matches no file/,
    );
    await expect(expandManifestPaths(['nope.yaml'], dir)).rejects.toThrow(
      /no such file or directory/,
    );
    await expect(expandManifestPaths(['k8s/sub', '!k8s/sub/*.yaml'], dir)).rejects.toThrow(
      /after the ! exclusions/,
    );
  });
});
