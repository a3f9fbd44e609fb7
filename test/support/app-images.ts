import { execFile } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import type { BuildStack } from './build-stack';
import { REGISTRY_USER } from './build-stack';
import { APP_DIR, modelFilesOf } from './models';
import { errorLines, runAction } from './run-action';

const exec = promisify(execFile);
export const BASE_IMAGE = 'ai-app-base:bookworm';
const BASE_REPOSITORY = 'ai/image-classifier-base';

async function docker(args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  return (await exec('docker', args, { maxBuffer: 64 * 1024 * 1024, env })).stdout.trim();
}

/**
 * The example app without its model (the Dockerfile with an empty model/), built on the local
 * base image and pushed to the stack's registry by a plain user: the `base-image` of
 * build-push's model-layer mode. Returns its reference within the registry.
 */
export async function pushAppBase(stack: BuildStack, tag = '1'): Promise<string> {
  await docker(['image', 'inspect', BASE_IMAGE]).catch(() => {
    throw new Error(
      `${BASE_IMAGE} is missing: run scripts/setup.sh (scripts/setup.d/25-base-image.sh builds it)`,
    );
  });
  const work = mkdtempSync(path.join(tmpdir(), 'app-base-'));
  const reference = `${stack.registry.host}/${BASE_REPOSITORY}:${tag}`;
  try {
    cpSync(path.join(APP_DIR, 'Dockerfile'), path.join(work, 'Dockerfile'));
    cpSync(path.join(APP_DIR, 'classifier'), path.join(work, 'classifier'), {
      recursive: true,
      filter: (source) => !source.includes('__pycache__'),
    });
    mkdirSync(path.join(work, 'model'));
    await docker(['build', '-q', '--build-arg', `BASE_IMAGE=${BASE_IMAGE}`, '-t', reference, work]);
    const config = path.join(work, 'docker-config');
    mkdirSync(config);
    const env = { ...process.env, PW: REGISTRY_USER.password };
    await exec(
      'sh',
      [
        '-c',
        `printf %s "$PW" | docker --config ${config} login ${stack.registry.host} -u ${REGISTRY_USER.username} --password-stdin`,
      ],
      { env },
    );
    await docker(['--config', config, 'push', '-q', reference]);
  } finally {
    await docker(['image', 'rm', reference]).catch(() => '');
    rmSync(work, { recursive: true, force: true });
  }
  return `${BASE_REPOSITORY}:${tag}`;
}

/**
 * The app image with `modelDir` inside, made the way the pipeline makes it: build-push in
 * model-layer mode (the model appended to the base as one layer, signed in through OIDC and
 * ACR's token exchange). Returns registry/repository@sha256:...
 */
export async function appImage(
  stack: BuildStack,
  base: string,
  modelDir: string,
  commit: string,
): Promise<string> {
  const workspace = mkdtempSync(path.join(tmpdir(), 'app-image-'));
  try {
    const run = await runAction(
      'build-push',
      {
        ...stack.identityInputs(),
        registry: stack.registry.host,
        repository: 'ai/image-classifier',
        mode: 'model-layer',
        'base-image': base,
        'model-path': modelDir,
        'model-files': modelFilesOf(modelDir),
      },
      { env: stack.jobEnv(commit), cwd: workspace },
    );
    if (run.exitCode !== 0) throw new Error(`build-push failed: ${errorLines(run).join('\n')}`);
    return run.outputs.image;
  } finally {
    rmSync(workspace, { recursive: true, force: true });
  }
}
