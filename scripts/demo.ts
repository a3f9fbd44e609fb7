/**
 * `npm run demo`: the pipeline rehearsed locally on the embedded stack. It starts the GitHub
 * OIDC and Entra doubles and a real Azurite, uploads an example model set, then runs the
 * committed action bundles exactly as the runner would (INPUT_* variables, a GITHUB_OUTPUT
 * file, a job summary file, the OIDC token endpoint) and prints what each step produced.
 * Files it leaves for inspection go to .local/demo/.
 */
import { createHash, randomBytes } from 'node:crypto';
import { mkdirSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { formatBytes, formatDuration } from '../src/common/format';
import { errorLines, REPO_ROOT, runAction, type ActionRun } from '../test/support/run-action';
import { Stack } from '../test/support/stack';

const DEMO_DIR = path.join(REPO_ROOT, '.local', 'demo');
const CONTAINER = 'models';

interface Stage {
  name: string;
  milliseconds: number;
}

const stages: Stage[] = [];

async function stage<T>(name: string, work: () => Promise<T>): Promise<T> {
  console.log(`\n=== ${name}`);
  const started = Date.now();
  const result = await work();
  stages.push({ name, milliseconds: Date.now() - started });
  return result;
}

/** A model set shaped like the seed's ResNet_152.model + synset.txt: weights and labels. */
function exampleModelSet(): Array<{ name: string; bytes: Buffer }> {
  const labels = Array.from(
    { length: 10 },
    (_, digit) => `n${String(digit).padStart(8, '0')} digit ${digit}`,
  );
  return [
    { name: 'digits/model.bin', bytes: randomBytes(48 * 1024 * 1024) },
    { name: 'digits/labels.txt', bytes: Buffer.from(labels.join('\n') + '\n') },
  ];
}

function printRun(run: ActionRun): void {
  const failures = errorLines(run);
  if (run.exitCode !== 0) {
    console.log(run.stdout);
    console.error(run.stderr);
    throw new Error(`the action failed (exit ${run.exitCode}): ${failures.join(' ')}`);
  }
  console.log('Outputs (GITHUB_OUTPUT):');
  for (const [name, value] of Object.entries(run.outputs)) {
    const shown = name === 'files' ? JSON.stringify(JSON.parse(value), null, 2) : value;
    console.log(`  ${name} = ${shown.replace(/\n/g, '\n    ')}`);
  }
  console.log('\nJob summary (GITHUB_STEP_SUMMARY):\n');
  console.log(run.summary.trim().replace(/^/gm, '  '));
}

async function main(): Promise<void> {
  rmSync(DEMO_DIR, { recursive: true, force: true });
  const workspace = path.join(DEMO_DIR, 'workspace');
  mkdirSync(workspace, { recursive: true });
  const stack = new Stack();
  try {
    await stage('Start the embedded stack (GitHub OIDC and Entra doubles, Azurite)', async () => {
      await stack.start({ inMemory: true });
      console.log(`Azurite blob endpoint: ${stack.azurite.endpoint} (HTTPS, OAuth required)`);
      console.log(`Entra authority:       ${stack.entra.authorityHost}`);
    });

    const model = exampleModelSet();
    await stage('A data scientist uploads the model set', async () => {
      const container = await stack.azurite.container(CONTAINER);
      for (const file of model) {
        await container.getBlockBlobClient(file.name).uploadData(file.bytes);
        const digest = createHash('sha256').update(file.bytes).digest('hex');
        console.log(
          `${CONTAINER}/${file.name}: ${formatBytes(file.bytes.length)}, sha256 ${digest}`,
        );
      }
    });

    const inputs = {
      'blob-endpoint': stack.azurite.endpoint,
      container: CONTAINER,
      prefix: 'digits/',
      path: 'model',
      ...stack.identityInputs(),
    };
    await stage('action-fetch-model (dist/fetch-model/index.js), signed in by OIDC', async () => {
      printRun(
        await runAction('fetch-model', inputs, { env: stack.oidc.jobEnv(), cwd: workspace }),
      );
    });
    await stage('action-fetch-model again: nothing changed, so nothing is downloaded', async () => {
      const run = await runAction('fetch-model', inputs, {
        env: stack.oidc.jobEnv(),
        cwd: workspace,
      });
      if (run.exitCode !== 0) printRun(run);
      console.log(
        `cache-hit = ${run.outputs['cache-hit']}, model-digest = ${run.outputs['model-digest']}`,
      );
    });
    console.log(`\nThe model files are in ${path.join(workspace, 'model')}`);
  } finally {
    await stack.stop();
  }

  console.log('\n=== Stage times');
  for (const { name, milliseconds } of stages) {
    console.log(`${formatDuration(milliseconds).padStart(9)}  ${name}`);
  }
}

main().catch((error) => {
  console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
