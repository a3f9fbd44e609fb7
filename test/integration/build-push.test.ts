import { execFile } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import {
  cpSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BuildStack, REGISTRY_USER } from '../support/build-stack';
import { FaultProxy } from '../support/fault-proxy';
import { errorLines, REPO_ROOT, runAction, type ActionRun } from '../support/run-action';

const exec = promisify(execFile);
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/build-push');
const BASE_IMAGE = 'ai-app-base:bookworm';

async function docker(...args: string[]): Promise<string> {
  return (await exec('docker', args, { maxBuffer: 64 * 1024 * 1024 })).stdout;
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
  const modelDigest = 'a'.repeat(12) + sha256(model).slice(12);
  let workspace: string;
  let modelDir: string;

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
    await exec(
      'sh',
      [
        '-c',
        `printf %s "$PW" | docker --config ${config} login ${stack.registry.host} -u ${REGISTRY_USER.username} --password-stdin`,
      ],
      {
        env: { ...process.env, PW: REGISTRY_USER.password },
      },
    );
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
    writeFileSync(path.join(modelDir, '.fetch-model.lock.json'), '{}');
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
      { env: { ...stack.jobEnv(sha), ...env }, cwd: workspace },
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
      await exec(
        'sh',
        [
          '-c',
          `printf %s "$PW" | docker --config ${config} login ${stack.registry.host} -u ${REGISTRY_USER.username} --password-stdin`,
        ],
        {
          env: { ...process.env, PW: REGISTRY_USER.password },
        },
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
    const files = JSON.stringify([
      {
        name: 'ResNet_152.model',
        path: 'ResNet_152.model',
        uri: 'https://acct.blob.core.windows.net/models/ResNet_152.model',
        etag: '"0x8D1"',
        sha256: sha256(model),
        size: model.length,
      },
    ]);
    const run = await buildPush(
      {
        repository: 'ai/image-classifier',
        context: 'app',
        'model-digest': modelDigest,
        'model-files': files,
        tags: `${sha.slice(0, 12)}-${modelDigest.slice(0, 12)}, latest`,
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
    expect(JSON.parse(run.outputs.tags)).toEqual([
      `${sha.slice(0, 12)}-${modelDigest.slice(0, 12)}`,
      'latest',
    ]);
    expect(Number(run.outputs['bytes-uploaded'])).toBeGreaterThan(model.length);
    expect(run.stdout).toMatch(/POST \/score → HTTP 200/);
    expect(run.summary).toMatch(/Image pushed/);
    expect(run.summary).toMatch(/Smoke test \| passed/);
    // The staging directory is gone, the context is as it was.
    expect(readdirSync(path.join(workspace, 'app')).sort()).toEqual([
      'Dockerfile',
      'Dockerfile.base',
      'app.py',
    ]);
    expect(await containersLeft()).toBe('');

    const labels = await labelsOf('ai/image-classifier', 'latest');
    expect(labels['org.opencontainers.image.revision']).toBe(sha);
    expect(labels['org.opencontainers.image.source']).toBe('https://github.com/octo-org/ai-app');
    expect(labels['org.opencontainers.image.created']).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(labels['ai.model.digest']).toBe(modelDigest);
    expect(JSON.parse(labels['ai.model.files'])[0]).toMatchObject({
      name: 'ResNet_152.model',
      etag: '"0x8D1"',
      sha256: sha256(model),
    });

    expect(await modelInImage(run.outputs.image)).toBe(sha256(model));

    // The refresh and access tokens went through the exchange and never reached the log.
    expect(stack.registry.tokens.requests.map((request) => request.endpoint)).toContain('exchange');
    expect(
      leakedSecrets(run, [...stack.registry.tokens.issuedSecrets, ...stack.oidc.issuedTokens]),
    ).toEqual([]);

    // The same commit and model again: nothing is built or pushed.
    const again = await buildPush(
      {
        repository: 'ai/image-classifier',
        context: 'app',
        'model-digest': modelDigest,
        tags: `${sha.slice(0, 12)}-${modelDigest.slice(0, 12)}`,
        ...smokeInputs,
      },
      sha,
    );
    expect(errorLines(again)).toEqual([]);
    expect(again.outputs.skipped).toBe('true');
    expect(again.outputs.digest).toBe(run.outputs.digest);
    expect(again.outputs['bytes-uploaded']).toBe('0');
    expect(again.stdout).not.toMatch(/docker build|Smoke test/);
    expectRedirectedBlobReads(dataReads);
  });

  it('dockerfile mode with push: false builds and smoke-tests, and touches no registry', async () => {
    const sha = randomBytes(20).toString('hex');
    const tokenRequests = stack.registry.tokens.requests.length;
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
    expect(stack.registry.tokens.requests.length).toBe(tokenRequests);
    const labels = JSON.parse(
      await docker('image', 'inspect', '--format', '{{json .Config.Labels}}', run.outputs.image),
    ) as Record<string, string>;
    expect(labels['org.opencontainers.image.revision']).toBe(sha);
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
      'smoke-timeout': '4',
    });
    expectFailure(
      run,
      /Smoke test failed: \/not-there did not answer 2xx within 4 s \(last: HTTP 404\)/,
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

    // A new commit with the same model: the model layer is found by its labels, not uploaded.
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
