import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { load } from 'js-yaml';

const WORKFLOW = path.resolve(__dirname, '../../.github/workflows/ai-app-cicd.yml');

interface Step {
  id?: string;
  name?: string;
  uses?: string;
  run?: string;
  env?: Record<string, string>;
  with?: Record<string, string>;
}

const steps = Object.values(
  (load(readFileSync(WORKFLOW, 'utf8')) as { jobs: Record<string, { steps?: Step[] }> }).jobs,
).flatMap((job) => job.steps ?? []);
const keyStep = steps.find((step) => step.id === 'model-cache')!;
const restore = steps.find((step) => step.uses?.startsWith('actions/cache/restore'))!;
const save = steps.find((step) => step.uses?.startsWith('actions/cache/save'))!;

/** The reusable workflow's inputs that name a model set, as a caller might pass them. */
const SET = {
  'model-provider': 'azure-blob',
  cloud: 'AzurePublicCloud',
  'storage-account': 'mymodels',
  'blob-endpoint': '',
  'model-container': 'models',
  'model-bucket': '',
  'aws-region': '',
  'model-blobs': 'ResNet_152.model\nsynset.txt',
  'model-prefix': '',
};

/**
 * Runs the key step's script with bash, as the runner does: every `${{ inputs.x }}` of its env
 * becomes the given input's value; returns the key it writes to GITHUB_OUTPUT.
 */
function cacheKey(inputs: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'cache-key-'));
  try {
    const output = path.join(dir, 'output');
    writeFileSync(output, '');
    const env: Record<string, string> = { PATH: process.env.PATH ?? '', GITHUB_OUTPUT: output };
    for (const [name, value] of Object.entries(keyStep.env ?? {})) {
      const input = /^\$\{\{ inputs\.([a-z-]+) \}\}$/.exec(value)?.[1];
      if (!input) throw new Error(`${name} is not an input: ${value}`);
      env[name] = inputs[input] ?? '';
    }
    // The runner's own command line for `shell: bash`.
    const script = path.join(dir, 'step.sh');
    writeFileSync(script, keyStep.run!);
    const run = spawnSync('bash', ['--noprofile', '--norc', '-eo', 'pipefail', script], {
      env,
      cwd: dir,
      encoding: 'utf8',
    });
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    const match = /^key=(.*)$/m.exec(readFileSync(output, 'utf8'));
    return match![1];
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe("the reusable workflow's model cache", () => {
  it('is keyed by a hash of the provider, cloud, account, endpoint, container, bucket, region, blob list and prefix', () => {
    expect(Object.values(keyStep.env ?? {}).sort()).toEqual(
      Object.keys(SET)
        .map((name) => `\${{ inputs.${name} }}`)
        .sort(),
    );
    const key = cacheKey(SET);
    expect(key).toMatch(/^ai-model-[0-9a-f]{40}$/);
    expect(cacheKey({ ...SET })).toBe(key);
    for (const name of Object.keys(SET) as Array<keyof typeof SET>) {
      expect(cacheKey({ ...SET, [name]: `${SET[name]}x` })).not.toBe(key);
    }
    // Values are joined unambiguously: moving text from one input to the next is another set.
    expect(
      cacheKey({ ...SET, 'model-container': 'model', 'model-blobs': `s${SET['model-blobs']}` }),
    ).not.toBe(key);
  });

  it('passes inputs to the script through its environment, never into its text', () => {
    expect(keyStep.run).not.toContain('${{');
    const marker = path.join(tmpdir(), `cache-key-injected-${process.pid}`);
    const key = cacheKey({
      ...SET,
      'model-blobs': `a.bin"; touch ${marker}; echo "\n$(touch ${marker})`,
    });
    expect(key).toMatch(/^ai-model-[0-9a-f]{40}$/);
    expect(existsSync(marker)).toBe(false);
  });

  it("restores and saves only under this set's key, with no restore key that reaches another set", () => {
    const prefix = '${{ steps.model-cache.outputs.key }}-';
    expect(restore.with?.key).toBe(`${prefix}\${{ github.run_id }}`);
    // One restore key: the set's hash and a dash. The hash has a fixed length, so no other
    // set's key starts with it.
    expect(restore.with?.['restore-keys']).toBe(prefix);
    expect(save.with?.key).toBe(`${prefix}\${{ steps.model.outputs.model-digest }}`);
    expect(restore.with?.path).toBe(save.with?.path);
  });
});
