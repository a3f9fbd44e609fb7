import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  readFileSync,
  symlinkSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { resolveModelFiles } from '../../src/build-push/model-files';
import { TarLayer } from '../../src/build-push/oci/tar-layer';
import { modelDigest as digestOfModel } from '../../src/common/model';
import { BuildStack, REGISTRY_USER } from '../support/build-stack';
import { FaultProxy } from '../support/fault-proxy';
import { writeStateFile } from '../support/model-state';
import { Registry } from '../support/registry';
import { TENANT_ID } from '../support/stack';
import { errorLines, REPO_ROOT, runAction, type ActionRun } from '../support/run-action';

const exec = promisify(execFile);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/build-push');
const BASE_IMAGE = 'ai-app-base:bookworm';

async function docker(...args: string[]): Promise<string> {
  return (await exec('docker', args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
}

/** `docker login` into `config` with the password on stdin, as docker/login-action does. */
async function dockerLogin(config: string, host: string, username: string, password: string) {
  await exec(
    'sh',
    [
      '-c',
      `printf %s "$PW" | docker --config ${config} login ${host} -u ${username} --password-stdin`,
    ],
    { env: { ...process.env, PW: password } },
  );
}

/** Every value that must never appear in a log line other than ::add-mask::. */
function leakedSecrets(run: ActionRun, secrets: string[]): string[] {
  const text = `${run.stdout}\n${run.stderr}`
    .split('\n')
    .filter((line) => !line.startsWith('::add-mask::'))
    .join('\n');
  return secrets.filter((secret) => secret.length > 8 && text.includes(secret));
}

describe('build-push against the real registry and dockerd, signed in through OIDC and the ACR token exchange', () => {
  const stack = new BuildStack({
    // The Entra app may push everywhere but ai/readonly, where it may only pull.
    grant: (_identity, repository, requested) =>
      repository === 'ai/readonly' ? requested.filter((action) => action === 'pull') : requested,
  });
  const model = randomBytes(5 * 1024 * 1024 + 123);
  const labelsFile = Buffer.from('n01440764 tench\nn01443537 goldfish\n');
  // What fetch-model reports for these two files.
  const modelDigest = digestOfModel([
    { path: 'ResNet_152.model', sha256: sha256(model) },
    { path: 'labels/synset.txt', sha256: sha256(labelsFile) },
  ]);
  let workspace: string;
  let modelDir: string;
  /** The user's own docker config (DOCKER_CONFIG), which the action must never write. */
  let userDockerConfig: string;

  beforeAll(async () => {
    await docker('image', 'inspect', BASE_IMAGE).catch(() => {
      throw new Error(
        `${BASE_IMAGE} is missing: run scripts/setup.sh (scripts/setup.d/25-base-image.sh builds it)`,
      );
    });
    await stack.start();
    // The base image for model-layer mode: the app without the model, pushed with a plain user.
    const base = `${stack.registry.host}/ai/app-base:1`;
    await docker(
      'build',
      '-q',
      '-t',
      base,
      '-f',
      path.join(FIXTURE, 'app/Dockerfile.base'),
      path.join(FIXTURE, 'app'),
    );
    const config = mkdtempSync(path.join(tmpdir(), 'docker-config-'));
    await dockerLogin(config, stack.registry.host, REGISTRY_USER.username, REGISTRY_USER.password);
    await docker('--config', config, 'push', base);
    rmSync(config, { recursive: true, force: true });
    await docker('image', 'rm', base);
  });
  afterAll(async () => {
    // Images tagged for this run's registry (its port is never used again).
    const images = (await docker('image', 'ls', '--format', '{{.Repository}}:{{.Tag}}'))
      .split('\n')
      .filter((image) => image.startsWith(`${stack.registry.host}/`));
    if (images.length > 0) await docker('image', 'rm', '-f', ...images).catch(() => undefined);
    await stack.stop();
  });
  beforeEach(() => {
    workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'));
    cpSync(path.join(FIXTURE, 'app'), path.join(workspace, 'app'), { recursive: true });
    cpSync(path.join(FIXTURE, 'request.json'), path.join(workspace, 'request.json'));
    modelDir = path.join(workspace, 'fetched');
    mkdirSync(path.join(modelDir, 'labels'), { recursive: true });
    writeFileSync(path.join(modelDir, 'ResNet_152.model'), model);
    writeFileSync(path.join(modelDir, 'labels', 'synset.txt'), labelsFile);
    writeStateFile(modelDir);
    userDockerConfig = path.join(workspace, 'user-docker-config');
    mkdirSync(userDockerConfig);
  });
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  const buildPush = (
    inputs: Record<string, string>,
    sha = randomBytes(20).toString('hex'),
    env: Record<string, string> = {},
  ) =>
    runAction(
      'build-push',
      {
        registry: stack.registry.host,
        'model-path': 'fetched',
        ...stack.identityInputs(),
        ...inputs,
      },
      { env: { ...stack.jobEnv(sha), DOCKER_CONFIG: userDockerConfig, ...env }, cwd: workspace },
    );

  const smokeInputs = {
    'smoke-port': '5000',
    'smoke-request': 'request.json',
    'smoke-expect': sha256(model),
    'smoke-timeout': '60',
  };

  const expectFailure = (run: ActionRun, message: RegExp) => {
    expect(run.exitCode).toBe(1);
    expect(errorLines(run).join('\n')).toMatch(message);
  };

  /** The config labels of a pushed image, read from the registry. */
  async function labelsOf(repository: string, reference: string): Promise<Record<string, string>> {
    const manifest = (await (
      await stack.registry.get(repository, `manifests/${reference}`)
    ).json()) as {
      config: { digest: string };
    };
    const config = (await (
      await stack.registry.get(repository, `blobs/${manifest.config.digest}`)
    ).json()) as {
      config: { Labels: Record<string, string> };
    };
    return config.config.Labels;
  }

  /** Pulls the image as a user would and reads the model's digest inside it. */
  async function modelInImage(image: string): Promise<string> {
    const config = mkdtempSync(path.join(tmpdir(), 'docker-config-'));
    try {
      await dockerLogin(
        config,
        stack.registry.host,
        REGISTRY_USER.username,
        REGISTRY_USER.password,
      );
      await docker('--config', config, 'pull', '-q', image);
      const out = await docker(
        'run',
        '--rm',
        '--entrypoint',
        'sha256sum',
        image,
        '/app/model/ResNet_152.model',
        '/app/model/labels/synset.txt',
      );
      const listing = await docker('run', '--rm', '--entrypoint', 'ls', image, '-A', '/app/model');
      expect(listing.split('\n').filter(Boolean).sort()).toEqual(['ResNet_152.model', 'labels']);
      expect(out).toContain(sha256(labelsFile));
      return out.split(' ')[0];
    } finally {
      await docker('image', 'rm', '-f', image).catch(() => undefined);
      rmSync(config, { recursive: true, force: true });
    }
  }

  async function containersLeft(): Promise<string> {
    return (
      await docker('ps', '-a', '--filter', 'name=build-push-smoke-', '--format', '{{.Names}}')
    ).trim();
  }

  /** fetch-model's `files` output for the model directory of each test. */
  const filesOutput = () =>
    JSON.stringify([
      {
        name: 'ResNet_152.model',
        path: path.join(modelDir, 'ResNet_152.model'),
        uri: 'https://acct.blob.core.windows.net/models/ResNet_152.model',
        etag: '"0x8D1"',
        sha256: sha256(model),
        size: model.length,
      },
      {
        name: 'labels/synset.txt',
        path: path.join(modelDir, 'labels', 'synset.txt'),
        uri: 'https://acct.blob.core.windows.net/models/labels/synset.txt',
        etag: '"0x8D2"',
        sha256: sha256(labelsFile),
        size: labelsFile.length,
      },
    ]);

  /** Uploads a blob as anyone with push rights (AcrPush) could. */
  async function pushBlob(repository: string, data: Buffer): Promise<string> {
    const authorization = `Bearer ${stack.registry.bearer(repository)}`;
    const digest = `sha256:${sha256(data)}`;
    const start = await fetch(`${stack.registry.url}/v2/${repository}/blobs/uploads/`, {
      method: 'POST',
      headers: { authorization },
    });
    expect(start.status).toBe(202);
    const location = new URL(start.headers.get('location')!, stack.registry.url);
    location.searchParams.set('digest', digest);
    const put = await fetch(location, {
      method: 'PUT',
      headers: { authorization, 'content-type': 'application/octet-stream' },
      body: data,
    });
    expect(put.status).toBe(201);
    return digest;
  }

  async function pushManifest(repository: string, reference: string, manifest: object) {
    const body = Buffer.from(JSON.stringify(manifest));
    const answer = await fetch(`${stack.registry.url}/v2/${repository}/manifests/${reference}`, {
      method: 'PUT',
      headers: {
        authorization: `Bearer ${stack.registry.bearer(repository)}`,
        'content-type': (manifest as { mediaType: string }).mediaType,
      },
      body,
    });
    expect(answer.status).toBe(201);
    return `sha256:${sha256(body)}`;
  }

  interface ImageConfig {
    config: Record<string, unknown> & { Labels: Record<string, string> };
    rootfs: { type: string; diff_ids: string[] };
    [key: string]: unknown;
  }
  interface Manifest {
    mediaType: string;
    config: { mediaType: string; digest: string; size: number };
    layers: Array<{ mediaType: string; digest: string; size: number }>;
  }
  async function manifestOf(repository: string, reference: string): Promise<Manifest> {
    return (await (
      await stack.registry.get(repository, `manifests/${reference}`)
    ).json()) as Manifest;
  }

  /**
   * What an attacker with push rights does: the image at `reference`, with the same labels but
   * its config changed by `change` (and any extra layers), written under `tag`.
   */
  async function forge(
    repository: string,
    reference: string,
    tag: string,
    change: (config: ImageConfig, manifest: Manifest) => void | Promise<void>,
  ): Promise<string> {
    const manifest = await manifestOf(repository, reference);
    const config = (await (
      await stack.registry.get(repository, `blobs/${manifest.config.digest}`)
    ).json()) as ImageConfig;
    await change(config, manifest);
    const configBytes = Buffer.from(JSON.stringify(config));
    manifest.config = {
      ...manifest.config,
      digest: await pushBlob(repository, configBytes),
      size: configBytes.length,
    };
    return pushManifest(repository, tag, manifest);
  }

  /**
   * Blob reads since `since` went through ACR's redirect to the data endpoint, and no registry
   * token went with them (the data endpoint refuses a request that carries one).
   */
  const expectRedirectedBlobReads = (since: number) => {
    const reads = stack.registry.data.requests.slice(since);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.filter((read) => read.authorization || read.status !== 200)).toEqual([]);
  };

  it('dockerfile mode: builds, smoke-tests, pushes with OIDC, and the pulled image holds the model', async () => {
    const dataReads = stack.registry.data.requests.length;
    const sha = randomBytes(20).toString('hex');
    const tag = `${sha.slice(0, 12)}-${modelDigest.slice(0, 12)}`;
    const run = await buildPush(
      {
        repository: 'ai/image-classifier',
        context: 'app',
        'model-digest': modelDigest,
        'model-files': filesOutput(),
        tags: `${tag}, latest`,
        ...smokeInputs,
      },
      sha,
    );
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(run.outputs.skipped).toBe('false');
    expect(run.outputs.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(run.outputs.image).toBe(
      `${stack.registry.host}/ai/image-classifier@${run.outputs.digest}`,
    );
    expect(JSON.parse(run.outputs.tags)).toEqual([tag, 'latest']);
    expect(Number(run.outputs['bytes-uploaded'])).toBeGreaterThan(model.length);
    expect(run.stdout).toMatch(/POST \/score → HTTP 200/);
    expect(run.stdout).toContain('model staged in');
    expect(run.stdout).toContain('no buildx: building with docker build');
    expect(run.summary).toMatch(/Image pushed/);
    expect(run.summary).toMatch(/Smoke test \| passed/);
    // The staging directory is gone, the context is as it was.
    expect(readdirSync(path.join(workspace, 'app')).sort()).toEqual([
      'Dockerfile',
      'Dockerfile.base',
      'app.py',
    ]);
    expect(await containersLeft()).toBe('');

    // The digest is the one docker push reported, and the image id is the pushed config.
    const pushed = await manifestOf('ai/image-classifier', run.outputs.digest);
    expect(run.outputs.imageid).toBe(pushed.config.digest);
    expect(JSON.parse(run.outputs.metadata)).toEqual({
      'containerimage.digest': run.outputs.digest,
      'containerimage.descriptor': {
        mediaType: 'application/vnd.docker.distribution.manifest.v2+json',
        digest: run.outputs.digest,
        size: (
          await (
            await stack.registry.get('ai/image-classifier', `manifests/${run.outputs.digest}`)
          ).arrayBuffer()
        ).byteLength,
      },
      'containerimage.config.digest': pushed.config.digest,
      'image.name': `${stack.registry.host}/ai/image-classifier:${tag},${stack.registry.host}/ai/image-classifier:latest`,
    });

    const labels = await labelsOf('ai/image-classifier', 'latest');
    expect(labels['org.opencontainers.image.revision']).toBe(sha);
    expect(labels['org.opencontainers.image.source']).toBe('https://github.com/octo-org/ai-app');
    expect(labels['org.opencontainers.image.created']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(labels['ai.model.digest']).toBe(modelDigest);
    expect(JSON.parse(labels['ai.model.files'])[0]).toMatchObject({
      name: 'ResNet_152.model',
      // Relative to the model: no runner directory ends up in the image.
      path: 'ResNet_152.model',
      etag: '"0x8D1"',
      sha256: sha256(model),
    });

    expect(await modelInImage(run.outputs.image)).toBe(sha256(model));

    // The refresh and access tokens went through the exchange and never reached the log, and
    // docker login got the refresh token on stdin (its command line is in the log).
    expect(stack.registry.tokens.requests.map((request) => request.endpoint)).toContain('exchange');
    expect(run.stdout).toContain(
      `$ docker login ${stack.registry.host} --username 00000000-0000-0000-0000-000000000000 --password-stdin`,
    );
    expect(
      leakedSecrets(run, [...stack.registry.tokens.issuedSecrets, ...stack.oidc.issuedTokens]),
    ).toEqual([]);
    // The user's docker config was never written.
    expect(readdirSync(userDockerConfig)).toEqual([]);

    // Someone with push rights forges the tag: the same labels, another command.
    const forged = await forge('ai/image-classifier', tag, tag, (config) => {
      config.config.Cmd = ['/bin/sh', '-c', 'echo pwned'];
    });
    // The same commit and model again: dockerfile mode cannot verify the tag, so it builds and
    // pushes its own image; the forged one is neither skipped nor reported.
    const again = await buildPush(
      {
        repository: 'ai/image-classifier',
        context: 'app',
        'model-digest': modelDigest,
        tags: tag,
      },
      sha,
    );
    expect(errorLines(again)).toEqual([]);
    expect(again.outputs.skipped).toBe('false');
    expect(again.stdout).toContain('skip-existing: an image docker built cannot be checked');
    expect(again.outputs.digest).not.toBe(forged);
    expect(again.outputs.digest).toMatch(/^sha256:[a-f0-9]{64}$/);
    expect(
      (await stack.registry.get('ai/image-classifier', `manifests/${tag}`)).headers.get(
        'docker-content-digest',
      ),
    ).toBe(again.outputs.digest);
    expect((await labelsOf('ai/image-classifier', tag))['ai.model.digest']).toBe(modelDigest);
    expectRedirectedBlobReads(dataReads);
  });

  it('dockerfile mode with push: false builds and smoke-tests, and pushes nothing', async () => {
    const sha = randomBytes(20).toString('hex');
    const run = await buildPush(
      { repository: 'ai/not-pushed', context: 'app', push: 'false', ...smokeInputs },
      sha,
    );
    expect(errorLines(run)).toEqual([]);
    const tag = JSON.parse(run.outputs.tags)[0];
    expect(run.outputs.image).toBe(`${stack.registry.host}/ai/not-pushed:${tag}`);
    expect(run.outputs.digest).toBe('');
    expect(run.outputs['bytes-uploaded']).toBe('0');
    expect(run.summary).toMatch(/Image built/);
    expect((await stack.registry.get('ai/not-pushed', 'tags/list')).status).toBe(404);
    const local = JSON.parse(
      await docker('image', 'inspect', '--format', '{{json .}}', run.outputs.image),
    ) as { Id: string; Config: { Labels: Record<string, string> } };
    expect(local.Config.Labels['org.opencontainers.image.revision']).toBe(sha);
    expect(run.outputs.imageid).toBe(local.Id);
    expect(JSON.parse(run.outputs.metadata)).toEqual({
      'containerimage.config.digest': local.Id,
      'image.name': run.outputs.image,
    });
    await docker('image', 'rm', run.outputs.image);
  });

  it('dockerfile mode: a failing smoke test prints the container log and pushes nothing', async () => {
    const run = await buildPush({
      repository: 'ai/smoke-fails',
      context: 'app',
      ...smokeInputs,
      'smoke-expect': 'goldfish',
    });
    expectFailure(
      run,
      /Smoke test failed: the response to POST \/score does not contain 'goldfish'\. Nothing was pushed\./,
    );
    expect(run.stdout).toMatch(/Container log of build-push-smoke-/);
    expect(run.stdout).toMatch(/loaded 2 model file\(s\) from \/app\/model/);
    expect(await containersLeft()).toBe('');
    expect((await stack.registry.get('ai/smoke-fails', 'tags/list')).status).toBe(404);
  });

  it('dockerfile mode: an app that never becomes healthy fails within smoke-timeout', async () => {
    const run = await buildPush({
      repository: 'ai/smoke-fails',
      context: 'app',
      'smoke-port': '5000',
      'smoke-path': '/not-there',
      // Long enough for the app to start on a loaded machine, so its last answer is the 404.
      'smoke-timeout': '20',
    });
    expectFailure(
      run,
      /Smoke test failed: \/not-there did not answer 2xx within 20 s \(last: HTTP 404\)/,
    );
    expect(await containersLeft()).toBe('');
  });

  it('model-layer mode: no build, base layers mounted, model layer uploaded, image runs with the model', async () => {
    const dataReads = stack.registry.data.requests.length;
    const sha = randomBytes(20).toString('hex');
    // ACR's token service is briefly unavailable: the exchange is retried.
    stack.registry.tokens.failNext = 1;
    const run = await buildPush(
      {
        repository: 'ai/classifier-fast',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
        'model-digest': modelDigest,
        'chunk-size': '2MiB',
        ...smokeInputs,
      },
      sha,
    );
    expect(run.stdout).toMatch(
      /ACR token exchange at https:\/\/127\.0\.0\.1:\d+\/oauth2\/exchange failed: HTTP 503; retrying in/,
    );
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    const tag = `${sha.slice(0, 12)}-${modelDigest.slice(0, 12)}`;
    expect(JSON.parse(run.outputs.tags)).toEqual([tag]);
    expect(run.summary).toMatch(/base layer 1 \| `[0-9a-f]{16}` \| [\d.]+ [KMG]iB \| mounted/);
    expect(run.summary).toMatch(/model layer \| `[0-9a-f]{16}` \| [\d.]+ MiB \| uploaded/);
    const uploaded = Number(run.outputs['bytes-uploaded']);
    expect(uploaded).toBeGreaterThan(model.length);
    expect(uploaded).toBeLessThan(model.length + 64 * 1024);

    const labels = await labelsOf('ai/classifier-fast', tag);
    expect(labels['ai.model.digest']).toBe(modelDigest);
    expect(labels['ai.model.dest']).toBe('/app/model');
    const layerDigest = labels['ai.model.layer'];
    // The model layer's blob hashes to its digest, and it is the tar of exactly the model files.
    const blob = Buffer.from(
      await (await stack.registry.get('ai/classifier-fast', `blobs/${layerDigest}`)).arrayBuffer(),
    );
    expect(`sha256:${sha256(blob)}`).toBe(layerDigest);
    const extracted = mkdtempSync(path.join(tmpdir(), 'layer-'));
    writeFileSync(path.join(extracted, 'layer.tar'), blob);
    const listing = (await exec('tar', ['-tvf', path.join(extracted, 'layer.tar')])).stdout;
    rmSync(extracted, { recursive: true, force: true });
    expect(listing).toMatch(
      /-rw-r--r-- root\/root\s+5243003 1970-01-01 00:00 app\/model\/ResNet_152\.model/,
    );
    expect(listing).not.toMatch(/fetch-model/);

    expect(await modelInImage(run.outputs.image)).toBe(sha256(model));

    // The API path asked ACR's token service for both repositories with the refresh token.
    expect(stack.registry.tokens.requests).toContainEqual({
      endpoint: 'token',
      method: 'POST',
      grantType: 'refresh_token',
      scope: 'repository:ai/classifier-fast:pull,push repository:ai/app-base:pull',
    });
    expect(leakedSecrets(run, stack.registry.tokens.issuedSecrets)).toEqual([]);

    // A new commit with the same model: the layer an earlier image labels as this model's is
    // the one computed here from the files, so it is reused, not uploaded.
    const next = await buildPush(
      {
        repository: 'ai/classifier-fast',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
        'model-digest': modelDigest,
      },
      randomBytes(20).toString('hex'),
    );
    expect(errorLines(next)).toEqual([]);
    expect(next.outputs.skipped).toBe('false');
    expect(Number(next.outputs['bytes-uploaded'])).toBeLessThan(16 * 1024);
    expect(next.summary).toMatch(/model layer \| `[0-9a-f]{16}` \| [\d.]+ MiB \| reused/);
    expect(next.summary).toMatch(/base layer 1 \| `[0-9a-f]{16}` \| [\d.]+ [KMG]iB \| exists/);
    expect(next.stdout).toContain(`model layer ${layerDigest} (computed here) is already in`);

    // The first commit again: its tag holds exactly the image this run would push.
    const again = await buildPush(
      {
        repository: 'ai/classifier-fast',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
        'model-digest': modelDigest,
        ...smokeInputs,
      },
      sha,
    );
    expect(errorLines(again)).toEqual([]);
    expect(again.outputs.skipped).toBe('true');
    expect(again.outputs.digest).toBe(run.outputs.digest);
    expect(again.outputs.imageid).toBe(run.outputs.imageid);
    expect(again.outputs['bytes-uploaded']).toBe('0');
    expect(again.stdout).toMatch(/is exactly the image this run would push/);
    expect(again.stdout).not.toMatch(/Smoke test/);
    expectRedirectedBlobReads(dataReads);
  });

  it('the registry double redirects blob reads like ACR, and its data endpoint refuses a registry token', async () => {
    const manifest = (await (await stack.registry.get('ai/app-base', 'manifests/1')).json()) as {
      config: { digest: string };
    };
    const path = `/v2/ai/app-base/blobs/${manifest.config.digest}`;
    const token = stack.registry.bearer('ai/app-base', ['pull']);
    const redirect = await fetch(`${stack.registry.url}${path}`, {
      headers: { authorization: `Bearer ${token}` },
      redirect: 'manual',
    });
    expect(redirect.status).toBe(307);
    const location = new URL(redirect.headers.get('location')!);
    expect(location.host).not.toBe(stack.registry.host);
    expect(location.searchParams.get('sig')).toBeTruthy();
    const withToken = await fetch(location, { headers: { authorization: `Bearer ${token}` } });
    expect(withToken.status).toBe(400);
    expect(withToken.headers.get('x-ms-error-code')).toBe('InvalidAuthenticationInfo');
    expect((await fetch(location)).status).toBe(200);
    // Without pull rights there is no redirect: the registry's own challenge comes back.
    expect((await fetch(`${stack.registry.url}${path}`, { redirect: 'manual' })).status).toBe(401);
  });

  it('model-layer mode: a forged <sha>-<model> tag is neither skipped nor reported as ours', async () => {
    const sha = randomBytes(20).toString('hex');
    const tag = `${sha.slice(0, 12)}-${modelDigest.slice(0, 12)}`;
    const inputs = {
      repository: 'ai/forged-tag',
      mode: 'model-layer',
      'base-image': 'ai/app-base:1',
      'model-files': filesOutput(),
    };
    const first = await buildPush(inputs, sha);
    expect(errorLines(first)).toEqual([]);
    // An AcrPush holder rewrites the tag: every label and layer kept, the command changed.
    const forged = await forge('ai/forged-tag', tag, tag, (config) => {
      config.config.Cmd = ['/bin/sh', '-c', 'echo pwned'];
    });
    expect((await labelsOf('ai/forged-tag', tag))['org.opencontainers.image.revision']).toBe(sha);

    const again = await buildPush(inputs, sha);
    expect(errorLines(again)).toEqual([]);
    expect(again.outputs.skipped).toBe('false');
    expect(again.outputs.digest).not.toBe(forged);
    expect(again.stdout).toMatch(
      /ai\/forged-tag:[0-9a-f]{12}-[0-9a-f]{12} exists but is not this run's image \(its config differs from the one this run would write/,
    );
    const now = await manifestOf('ai/forged-tag', tag);
    expect(now.config.digest).toBe(again.outputs.imageid);
    expect(JSON.parse(again.outputs.metadata)['containerimage.digest']).toBe(again.outputs.digest);

    // And a third run finds its own image there and skips.
    const third = await buildPush(inputs, sha);
    expect(third.outputs.skipped).toBe('true');
    expect(third.outputs.digest).toBe(again.outputs.digest);
  });

  it('model-layer mode: a forged "model layer" of the right size, labelled as this model\'s, is not spliced in', async () => {
    const repository = 'ai/forged-layer';
    const { files } = await resolveModelFiles(modelDir, undefined);
    const size = new TarLayer(files, '/app/model').size;
    // Bytes of exactly the model layer's size, and an image whose labels claim them as the
    // model layer of this model digest, under a tag of the default scheme.
    const fake = await pushBlob(repository, randomBytes(size));
    const config = Buffer.from(
      JSON.stringify({
        architecture: 'amd64',
        os: 'linux',
        config: {
          Labels: {
            'ai.model.digest': modelDigest,
            'ai.model.dest': '/app/model',
            'ai.model.layer': fake,
            'ai.model.layer-format': '1',
          },
        },
        rootfs: { type: 'layers', diff_ids: [fake] },
      }),
    );
    const configDigest = await pushBlob(repository, config);
    await pushManifest(repository, `${'f'.repeat(12)}-${modelDigest.slice(0, 12)}`, {
      schemaVersion: 2,
      mediaType: 'application/vnd.oci.image.manifest.v1+json',
      config: {
        mediaType: 'application/vnd.oci.image.config.v1+json',
        digest: configDigest,
        size: config.length,
      },
      layers: [{ mediaType: 'application/vnd.oci.image.layer.v1.tar', digest: fake, size }],
    });

    const run = await buildPush({
      repository,
      mode: 'model-layer',
      'base-image': 'ai/app-base:1',
      ...smokeInputs,
    });
    expect(errorLines(run)).toEqual([]);
    expect(run.stdout).toContain(
      `labels ${fake} as this model's layer, but the layer computed here differs; that layer is not reused`,
    );
    expect(run.summary).toMatch(/model layer \| `[0-9a-f]{16}` \| [\d.]+ MiB \| uploaded/);
    const pushed = await manifestOf(repository, run.outputs.digest);
    expect(pushed.layers.at(-1)!.digest).not.toBe(fake);
    expect((await labelsOf(repository, run.outputs.digest))['ai.model.layer']).toBe(
      pushed.layers.at(-1)!.digest,
    );
    expect(await modelInImage(run.outputs.image)).toBe(sha256(model));
  });

  it("feeds docker/metadata-action's tags and labels outputs to build-push", async () => {
    const image = `${stack.registry.host}/ai/meta`;
    const run = await buildPush({
      repository: 'ai/meta',
      mode: 'model-layer',
      'base-image': 'ai/app-base:1',
      tags: `${image}:1.2.0\n${image}:1.2\n${image}:latest\n`,
      labels: [
        'org.opencontainers.image.title=meta',
        'org.opencontainers.image.description=',
        'org.opencontainers.image.url=https://github.com/octo-org/meta',
        'org.opencontainers.image.version=1.2.0',
        'org.opencontainers.image.licenses=MIT',
      ].join('\n'),
    });
    expect(errorLines(run)).toEqual([]);
    expect(JSON.parse(run.outputs.tags)).toEqual(['1.2.0', '1.2', 'latest']);
    const listed = (await (await stack.registry.get('ai/meta', 'tags/list')).json()) as {
      tags: string[];
    };
    expect(listed.tags.sort()).toEqual(['1.2', '1.2.0', 'latest']);
    const labels = await labelsOf('ai/meta', 'latest');
    expect(labels).toMatchObject({
      'org.opencontainers.image.title': 'meta',
      'org.opencontainers.image.description': '',
      'org.opencontainers.image.version': '1.2.0',
      'ai.model.digest': modelDigest,
    });
    expect(JSON.parse(run.outputs.metadata)['image.name']).toBe(
      `${image}:1.2.0,${image}:1.2,${image}:latest`,
    );

    const elsewhere = await buildPush({
      repository: 'ai/meta',
      mode: 'model-layer',
      'base-image': 'ai/app-base:1',
      tags: 'ghcr.io/octo-org/meta:1.2.0',
    });
    expectFailure(
      elsewhere,
      /Invalid tags entry 'ghcr\.io\/octo-org\/meta:1\.2\.0': it names 'ghcr\.io\/octo-org\/meta', but this step pushes to '127\.0\.0\.1:\d+\/ai\/meta'/,
    );
  });

  it('model-layer mode: takes an OCI base, picks the platform from an index, refuses a missing one', async () => {
    // The docker-pushed base, re-written as an OCI manifest, and an index naming it for linux/amd64.
    const token = stack.registry.bearer('ai/app-base');
    const put = async (reference: string, mediaType: string, body: Buffer) => {
      const answer = await fetch(`${stack.registry.url}/v2/ai/app-base/manifests/${reference}`, {
        method: 'PUT',
        headers: { authorization: `Bearer ${token}`, 'content-type': mediaType },
        body,
      });
      expect(answer.status).toBe(201);
      return answer.headers.get('docker-content-digest')!;
    };
    const docker2 = (await (await stack.registry.get('ai/app-base', 'manifests/1')).json()) as {
      config: { digest: string; size: number };
      layers: Array<{ digest: string; size: number }>;
    };
    const oci = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.manifest.v1+json',
        config: { ...docker2.config, mediaType: 'application/vnd.oci.image.config.v1+json' },
        layers: docker2.layers.map((layer) => ({
          ...layer,
          mediaType: 'application/vnd.oci.image.layer.v1.tar+gzip',
        })),
      }),
    );
    const ociDigest = await put('1-oci', 'application/vnd.oci.image.manifest.v1+json', oci);
    const index = Buffer.from(
      JSON.stringify({
        schemaVersion: 2,
        mediaType: 'application/vnd.oci.image.index.v1+json',
        manifests: [
          {
            mediaType: 'application/vnd.oci.image.manifest.v1+json',
            digest: ociDigest,
            size: oci.length,
            platform: { os: 'linux', architecture: 'amd64' },
          },
        ],
      }),
    );
    await put('1-multi', 'application/vnd.oci.image.index.v1+json', index);

    const run = await buildPush({
      repository: 'ai/from-index',
      mode: 'model-layer',
      'base-image': 'ai/app-base:1-multi',
      ...smokeInputs,
    });
    expect(errorLines(run)).toEqual([]);
    expect(run.stdout).toContain('application/vnd.oci.image.manifest.v1+json');
    const manifest = (await (
      await stack.registry.get('ai/from-index', `manifests/${run.outputs.digest}`)
    ).json()) as { mediaType: string; layers: Array<{ mediaType: string }> };
    expect(manifest.mediaType).toBe('application/vnd.oci.image.manifest.v1+json');
    expect(manifest.layers.at(-1)!.mediaType).toBe('application/vnd.oci.image.layer.v1.tar');
    expect(await modelInImage(run.outputs.image)).toBe(sha256(model));

    const arm = await buildPush({
      repository: 'ai/from-index',
      mode: 'model-layer',
      'base-image': 'ai/app-base:1-multi',
      platform: 'linux/arm64',
    });
    expectFailure(
      arm,
      /base-image '.*ai\/app-base:1-multi' is a multi-platform index without 'linux\/arm64'; it has: linux\/amd64\. Set 'platform'/,
    );
  });

  it('model-layer mode: a failing smoke test moves no tag', async () => {
    const run = await buildPush({
      repository: 'ai/layer-smoke-fails',
      mode: 'model-layer',
      'base-image': 'ai/app-base:1',
      ...smokeInputs,
      'smoke-expect': 'goldfish',
    });
    expectFailure(run, /Smoke test failed: .*No tag was pushed/);
    const tags = (await (await stack.registry.get('ai/layer-smoke-fails', 'tags/list')).json()) as {
      tags: string[] | null;
    };
    expect(tags.tags ?? []).toEqual([]);
    expect(await containersLeft()).toBe('');
  });

  it('model-layer mode with a user name and password; the password never reaches the log', async () => {
    const run = await buildPush(
      {
        repository: 'ai/with-password',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
        'client-id': '',
        'tenant-id': '',
        username: REGISTRY_USER.username,
        password: REGISTRY_USER.password,
      },
      randomBytes(20).toString('hex'),
      { ACTIONS_ID_TOKEN_REQUEST_URL: '', ACTIONS_ID_TOKEN_REQUEST_TOKEN: '' },
    );
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(
      leakedSecrets(run, [
        REGISTRY_USER.password,
        Buffer.from(`${REGISTRY_USER.username}:${REGISTRY_USER.password}`).toString('base64'),
      ]),
    ).toEqual([]);
    expect(run.stdout).toContain(`::add-mask::${REGISTRY_USER.password}`);
  });

  it('the post step logs out and removes the private docker config the main step left', async () => {
    const config = mkdtempSync(path.join(tmpdir(), 'build-push-docker-'));
    writeFileSync(
      path.join(config, 'config.json'),
      JSON.stringify({ auths: { [stack.registry.host]: { auth: 'eDp5' } } }),
    );
    const run = await runAction(
      'build-push',
      {},
      {
        env: {
          'STATE_is-post': 'true',
          'STATE_docker-config': config,
          STATE_registry: stack.registry.host,
        },
        cwd: workspace,
      },
    );
    expect(run.exitCode).toBe(0);
    expect(run.stdout).toContain(`removed the docker login for ${stack.registry.host}`);
    expect(existsSync(config)).toBe(false);
  });

  describe('dockerfile mode signs in before it builds', () => {
    it('builds FROM a private image in the same registry with no credentials set up beforehand', async () => {
      const base = `${stack.registry.host}/ai/app-base:1`;
      const inputs = {
        repository: 'ai/from-private',
        context: 'app',
        'build-args': `BASE_IMAGE=${base}`,
        'model-files': filesOutput(),
      };
      // Without any credentials (no id-token permission, nothing pushed) docker cannot pull it.
      const anonymous = await buildPush({ ...inputs, push: 'false' }, undefined, {
        ACTIONS_ID_TOKEN_REQUEST_URL: '',
        ACTIONS_ID_TOKEN_REQUEST_TOKEN: '',
      });
      expectFailure(
        anonymous,
        /docker build failed \(exit 1\): .*(denied|unauthorized|authentication required)/is,
      );
      expect(anonymous.stdout).toContain(`not signed in to ${stack.registry.host}`);

      const run = await buildPush({ ...inputs, ...smokeInputs });
      try {
        expect(errorLines(run)).toEqual([]);
        expect(run.stdout).toContain(`signed in to ${stack.registry.host} for this step`);
        expect(run.stdout).toMatch(
          /Status: Downloaded newer image for 127\.0\.0\.1:\d+\/ai\/app-base:1/,
        );
        expect(run.stdout).toMatch(/POST \/score → HTTP 200/);
        expect(readdirSync(userDockerConfig)).toEqual([]);
        expect(await modelInImage(run.outputs.image)).toBe(sha256(model));
      } finally {
        await docker('image', 'rm', base).catch(() => undefined);
      }
    });

    it('builds FROM an image in a second registry the user signed in to (docker/login-action)', async () => {
      const user = {
        username: 'base-reader',
        password: 'second-' + randomBytes(12).toString('hex'),
      };
      const second = await new Registry({
        tenantId: TENANT_ID,
        entraKeys: () => [],
        users: { [user.username]: user.password },
      }).start();
      const base = `${second.host}/base/app-base:1`;
      try {
        // The base image in the second registry, pushed by its owner.
        const ownerConfig = mkdtempSync(path.join(tmpdir(), 'docker-config-'));
        await dockerLogin(ownerConfig, second.host, user.username, user.password);
        await docker('tag', BASE_IMAGE, base);
        await docker('--config', ownerConfig, 'push', base);
        await docker('image', 'rm', base);
        rmSync(ownerConfig, { recursive: true, force: true });

        const inputs = {
          repository: 'ai/from-second',
          context: 'app',
          'build-args': `BASE_IMAGE=${base}`,
          'model-files': filesOutput(),
          ...smokeInputs,
        };
        // The user's docker config holds no sign-in to the second registry yet: the pull fails.
        const refused = await buildPush(inputs);
        expectFailure(
          refused,
          /docker build failed \(exit 1\): .*(denied|unauthorized|authentication required)/is,
        );

        // As docker/login-action would: a sign-in in the user's DOCKER_CONFIG.
        await dockerLogin(userDockerConfig, second.host, user.username, user.password);
        const before = readFileSync(path.join(userDockerConfig, 'config.json'), 'utf8');
        const run = await buildPush(inputs);
        expect(errorLines(run)).toEqual([]);
        expect(run.stdout).toContain(
          `docker sign-ins kept from ${userDockerConfig}: ${second.host}`,
        );
        expect(run.stdout).toMatch(/POST \/score → HTTP 200/);
        // The user's config is as login-action left it: this step's sign-in went elsewhere.
        expect(readFileSync(path.join(userDockerConfig, 'config.json'), 'utf8')).toBe(before);
        expect(readdirSync(userDockerConfig)).toEqual(['config.json']);
        expect(leakedSecrets(run, [user.password, ...stack.registry.tokens.issuedSecrets])).toEqual(
          [],
        );
        expect(await modelInImage(run.outputs.image)).toBe(sha256(model));
      } finally {
        await docker('image', 'rm', base).catch(() => undefined);
        await second.stop();
      }
    });
  });

  describe('the model that ships is the model that was verified', () => {
    const nothingPushed = async (repository: string) =>
      expect((await stack.registry.get(repository, 'tags/list')).status).toBe(404);

    it.each(['dockerfile', 'model-layer'])(
      '%s mode: refuses a symbolic link to /etc/passwd and a file outside the set, naming them',
      async (mode) => {
        symlinkSync('/etc/passwd', path.join(modelDir, 'labels', 'passwd'));
        writeFileSync(path.join(modelDir, 'notes.txt'), 'not part of the model');
        const repository = `ai/refused-${mode}`;
        const run = await buildPush({
          repository,
          mode,
          context: 'app',
          'base-image': 'ai/app-base:1',
          'model-files': filesOutput(),
        });
        expectFailure(
          run,
          new RegExp(
            "model-path '.*fetched' does not hold exactly the model model-files describes: " +
              'symbolic links \\(build-push ships no link, it would copy what the link points at\\): ' +
              "'labels/passwd' → '/etc/passwd'; files model-files does not name: 'notes\\.txt'",
          ),
        );
        await nothingPushed(repository);
        expect(existsSync(path.join(workspace, 'app', 'model'))).toBe(false);
      },
    );

    it.each(['dockerfile', 'model-layer'])(
      "%s mode: refuses bytes that differ from model-files' sha256, and pushes nothing",
      async (mode) => {
        const files = filesOutput();
        // Same size, one byte changed: only the sha256 can tell.
        const tampered = Buffer.from(model);
        tampered[4_000_000] ^= 0xff;
        writeFileSync(path.join(modelDir, 'ResNet_152.model'), tampered);
        const repository = `ai/tampered-${mode}`;
        const run = await buildPush({
          repository,
          mode,
          context: 'app',
          'base-image': 'ai/app-base:1',
          'model-files': files,
        });
        expectFailure(
          run,
          new RegExp(
            `model file 'ResNet_152\\.model' does not match its sha256 in model-files: expected ${sha256(model)}, read ${sha256(tampered)}\\.`,
          ),
        );
        await nothingPushed(repository);
        expect(existsSync(path.join(workspace, 'app', 'model'))).toBe(false);
      },
    );

    it('model-layer mode, a re-run of the same model: a file changed since the first push fails its check on the hash workers, and nothing is pushed', async () => {
      // Larger than the hash workers' threshold, so the re-run checks it on worker threads.
      const big = randomBytes(20 * 1024 * 1024 + 5);
      writeFileSync(path.join(modelDir, 'ResNet_152.model'), big);
      const sha256s = writeStateFile(modelDir);
      const digest = digestOfModel(
        Object.entries(sha256s).map(([file, sha]) => ({ path: file, sha256: sha })),
      );
      const repository = 'ai/rerun-tampered';
      const inputs = {
        repository,
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
        'model-digest': digest,
      };
      const sha = randomBytes(20).toString('hex');
      const first = await buildPush(inputs, sha);
      expect(errorLines(first)).toEqual([]);
      const firstTag = JSON.parse(first.outputs.tags)[0] as string;
      // Unchanged, the re-run hashes the model on the workers and reuses the layer.
      const same = await buildPush(inputs);
      expect(errorLines(same)).toEqual([]);
      expect(same.stdout).toContain(`to check the layer :${firstTag} labels as this model's`);
      expect(same.stdout).not.toMatch(/on the main thread instead/);
      expect(same.summary).toMatch(/model layer \| `[0-9a-f]{16}` \| [\d.]+ MiB \| reused/);
      const tagsBefore = (await (await stack.registry.get(repository, 'tags/list')).json()) as {
        tags: string[];
      };

      // Same size, one byte changed near the end: only the sha256 can tell.
      const tampered = Buffer.from(big);
      tampered[tampered.length - 1000] ^= 0xff;
      writeFileSync(path.join(modelDir, 'ResNet_152.model'), tampered);
      const mismatch = new RegExp(
        `model file 'ResNet_152\\.model' does not match its sha256 in fetch-model's state file ` +
          `\\.fetch-model\\.lock\\.json: expected ${sha256(big)}, read ${sha256(tampered)}\\. ` +
          'Its bytes changed after fetch-model verified them; nothing was shipped\\.',
      );
      const nextSha = randomBytes(20).toString('hex');
      const next = await buildPush(inputs, nextSha);
      expectFailure(next, mismatch);
      // Either earlier tag may be the one whose labels are checked.
      const claimed = /to check the layer :(\S+) labels as this model's/.exec(next.stdout);
      expect(tagsBefore.tags).toContain(claimed?.[1]);
      expect(next.stdout).not.toMatch(/on the main thread instead/);
      expect(next.stdout).not.toMatch(/model layer sha256:[0-9a-f]{64}, computed/);
      // The same commit again (the skip-existing comparison) fails the same way, and skips nothing.
      const again = await buildPush(inputs, sha);
      expectFailure(again, mismatch);
      expect(again.outputs.skipped).not.toBe('true');

      expect(await (await stack.registry.get(repository, 'tags/list')).json()).toEqual(tagsBefore);
      const nextTag = `${nextSha.slice(0, 12)}-${digest.slice(0, 12)}`;
      expect((await stack.registry.get(repository, `manifests/${nextTag}`)).status).toBe(404);
    });
  });

  describe('uploads through a proxy that injects faults', () => {
    let proxy: FaultProxy;
    beforeEach(async () => {
      proxy = new FaultProxy(new URL(stack.registry.url));
      proxy.advertiseSelf = true;
      await proxy.start();
    });
    afterEach(() => proxy.stop());
    const proxyHost = () => new URL(proxy.url(stack.registry.url)).host;

    it('retries 503s, resumes after a dropped connection, and starts again after a cut mid-chunk', async () => {
      let patch = 0;
      const closed = new Set<string>();
      proxy.decide = (request) => {
        // The answer to the first closing PUT of each upload (the model layer's, the config's)
        // is lost after the registry completed it.
        const session = request.path.split('?')[0];
        if (request.method === 'PUT' && request.path.includes('digest=') && !closed.has(session)) {
          closed.add(session);
          return { kind: 'drop-response' };
        }
        if (request.method !== 'PATCH') return { kind: 'pass' };
        patch++;
        if (patch === 2) return { kind: 'status', status: 503, headers: { 'retry-after': '0' } };
        // The connection drops before any byte of the chunk arrives: the session survives.
        if (patch === 4) return { kind: 'cut-request', afterBytes: 0 };
        // Cut inside a chunk: Distribution invalidates a session holding part of a chunk (its
        // upload state no longer matches), so the blob starts again.
        if (patch === 6) return { kind: 'cut-request', afterBytes: 700 * 1024 };
        return { kind: 'pass' };
      };
      const run = await buildPush({
        registry: proxyHost(),
        repository: 'ai/flaky',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
        'chunk-size': '1MiB',
      });
      expect(errorLines(run)).toEqual([]);
      expect(run.exitCode).toBe(0);
      expect(run.stdout).toMatch(
        /upload interrupted \(PATCH .* failed: HTTP 503\); resuming at byte 1048576/,
      );
      expect(run.stdout).toMatch(
        /upload interrupted \((socket hang up|read ECONNRESET)\); resuming at byte 2097152/,
      );
      expect(run.stdout).toMatch(
        /upload interrupted \(socket hang up\) and the registry no longer has the session \(.*BLOB_UPLOAD_INVALID.*\); starting this blob again/,
      );
      expect(run.summary).toMatch(/model layer .* uploaded, resumed 3×/);
      expect(
        run.stdout.match(/the registry completed the upload whose answer was lost/g),
      ).toHaveLength(2);
      const labels = await labelsOf('ai/flaky', JSON.parse(run.outputs.tags)[0]);
      const blob = Buffer.from(
        await (
          await stack.registry.get('ai/flaky', `blobs/${labels['ai.model.layer']}`)
        ).arrayBuffer(),
      );
      expect(`sha256:${sha256(blob)}`).toBe(labels['ai.model.layer']);
      expect(blob.includes(model)).toBe(true);
    });

    it('renews the token once when the registry answers 401 mid-upload', async () => {
      let patch = 0;
      proxy.decide = (request) => {
        if (request.method === 'PATCH' && ++patch === 3) {
          return {
            kind: 'status',
            status: 401,
            headers: {
              'www-authenticate': `Bearer realm="${proxy.url(stack.registry.tokens.realm)}",service="${stack.registry.host}",error="invalid_token"`,
            },
          };
        }
        return { kind: 'pass' };
      };
      const exchangesBefore = stack.registry.tokens.requests.filter(
        (request) => request.endpoint === 'exchange',
      ).length;
      const run = await buildPush({
        registry: proxyHost(),
        repository: 'ai/renewed',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
        'chunk-size': '1MiB',
      });
      expect(errorLines(run)).toEqual([]);
      expect(run.stdout).toMatch(/the registry answered 401; renewing the token once/);
      const exchanges = stack.registry.tokens.requests.filter(
        (request) => request.endpoint === 'exchange',
      ).length;
      expect(exchanges - exchangesBefore).toBe(2);
    });
  });

  describe('clear errors', () => {
    it('names the AcrPush role when the identity may not push', async () => {
      const run = await buildPush({
        repository: 'ai/readonly',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
      });
      expectFailure(run, /refused .* \(HTTP 401: UNAUTHORIZED .*AcrPush role/);
    });

    it('refuses a repository that is not a valid reference', async () => {
      const run = await buildPush({ repository: 'AI/Classifier', context: 'app' });
      expectFailure(
        run,
        /Invalid repository 'AI\/Classifier'\. .*Repository names must be lower case\./,
      );
    });

    it('says which Dockerfile is missing', async () => {
      const run = await buildPush({
        repository: 'ai/x',
        context: 'app',
        dockerfile: 'app/Nope.Dockerfile',
      });
      expectFailure(run, /Dockerfile '.*app\/Nope\.Dockerfile' does not exist/);
    });

    it('says which model path is missing', async () => {
      const run = await buildPush({
        repository: 'ai/x',
        context: 'app',
        'model-path': 'no-such-dir',
      });
      expectFailure(run, /model-path 'no-such-dir' is not a directory/);
    });

    it('says when the base image does not exist', async () => {
      const run = await buildPush({
        repository: 'ai/x',
        mode: 'model-layer',
        'base-image': 'ai/app-base:404',
      });
      expectFailure(run, /base-image '.*ai\/app-base:404' does not exist/);
    });

    it('says when the registry cannot be reached', async () => {
      const run = await buildPush({
        registry: '127.0.0.1:9',
        repository: 'ai/x',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
      });
      expectFailure(run, /Cannot reach registry '127\.0\.0\.1:9': ECONNREFUSED/);
    }, 180_000);
  });
});
