import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { load } from 'js-yaml';
import { Inputs } from '../../src/common/inputs';
import { MemoryLogger } from '../../src/common/logger';
import { readSettings } from '../../src/build-push/inputs';
import { defaultTag, imageLabels } from '../../src/build-push/labels';

const ROOT = path.resolve(__dirname, '../..');

interface ActionYaml {
  inputs: Record<string, { required?: boolean; default?: string }>;
  outputs: Record<string, unknown>;
  runs: Record<string, string>;
}

const yaml = load(
  readFileSync(path.join(ROOT, 'action-build-push', 'action.yml'), 'utf8'),
) as ActionYaml;

describe('action-build-push', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'build-push-inputs-'));
    writeFileSync(path.join(dir, 'Dockerfile'), 'FROM scratch\n');
    mkdirSync(path.join(dir, 'model'));
    writeFileSync(path.join(dir, 'request.json'), '{}');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const inputs = (values: Record<string, string>) => new Inputs((name) => values[name] ?? '');
  const read = (values: Record<string, string>, env: NodeJS.ProcessEnv = {}) =>
    readSettings(
      inputs({ registry: 'myacr.azurecr.io', repository: 'ai/app', context: dir, ...values }),
      env,
      new MemoryLogger(),
    );

  it('runs the committed bundle on node24, with a post step that logs out', () => {
    expect(yaml.runs).toEqual({
      using: 'node24',
      main: '../dist/build-push/index.js',
      post: '../dist/build-push/index.js',
      'post-if': 'always()',
    });
  });

  it('declares every input the action reads, and reads every input it declares', () => {
    const requested = new Set<string>();
    const cases: Array<Record<string, string>> = [
      { 'smoke-port': '5000', 'smoke-request': path.join(dir, 'request.json') },
      {
        mode: 'model-layer',
        'model-path': path.join(dir, 'model'),
        'base-image': 'ai/base:1',
        username: 'u',
        password: 'p',
      },
    ];
    for (const values of cases) {
      const source = inputs({ registry: 'r.io', repository: 'ai/app', context: dir, ...values });
      readSettings(source, {}, new MemoryLogger());
      for (const name of source.requested) requested.add(name);
    }
    expect([...requested].sort()).toEqual(Object.keys(yaml.inputs).sort());
  });

  it('documents the defaults the code applies', () => {
    const settings = read({ 'smoke-port': '5000' });
    expect(settings.mode).toBe(yaml.inputs.mode.default);
    expect(settings.modelContextDir).toBe(yaml.inputs['model-context-dir'].default);
    expect(settings.modelDest).toBe(yaml.inputs['model-dest'].default);
    expect(settings.platform).toBe(yaml.inputs.platform.default);
    expect(settings.chunkSize).toBe(256 * 1024 * 1024);
    expect(yaml.inputs['chunk-size'].default).toBe('256MiB');
    expect(String(settings.push)).toBe(yaml.inputs.push.default);
    expect(String(settings.skipExisting)).toBe(yaml.inputs['skip-existing'].default);
    expect(settings.smoke).toMatchObject({
      port: 5000,
      path: yaml.inputs['smoke-path'].default,
      requestPath: yaml.inputs['smoke-request-path'].default,
      timeoutMs: Number(yaml.inputs['smoke-timeout'].default) * 1000,
    });
    expect(settings.dockerfile).toBe(path.join(dir, 'Dockerfile'));
  });

  it('declares the outputs main.ts sets', () => {
    const main = readFileSync(path.join(ROOT, 'src/build-push/main.ts'), 'utf8');
    const set = [...main.matchAll(/core\.setOutput\(\s*'([^']+)'/g)].map((match) => match[1]);
    expect(set.sort()).toEqual(Object.keys(yaml.outputs).sort());
  });

  it('names the input, quotes the value and says what is expected', () => {
    expect(() => read({ mode: 'fast' })).toThrow(
      "Invalid mode 'fast'. Expected one of: dockerfile, model-layer.",
    );
    expect(() => read({ 'build-args': 'NOPE' })).toThrow(
      "Invalid build-args line 'NOPE'. Expected NAME=VALUE",
    );
    expect(() => read({ 'model-digest': 'abc' })).toThrow("Invalid model-digest 'abc'.");
    expect(() => read({ 'model-files': '{"x":1}' })).toThrow(/Invalid model-files/);
    expect(() => read({ 'smoke-port': 'http' })).toThrow("Invalid smoke-port 'http'.");
    expect(() => read({ 'smoke-port': '5000', 'smoke-path': 'health' })).toThrow(
      "Invalid smoke-path 'health'.",
    );
    expect(() => read({ 'model-dest': 'app/model' })).toThrow("Invalid model-dest 'app/model'.");
    expect(() => read({ tags: 'ok, -bad' })).toThrow("Invalid tag '-bad' in 'tags'.");
    expect(() => read({ labels: 'ai.model.digest=forged' })).toThrow(
      "Invalid labels line 'ai.model.digest=forged': labels under 'ai.model.' are set by build-push",
    );
    expect(() => read({ labels: '=value' })).toThrow(
      "Invalid labels line '=value'. Expected key=value, one per line.",
    );
    expect(() => read({ username: 'u' })).toThrow("Set both 'username' and 'password'");
    expect(() => read({ mode: 'model-layer', 'model-path': path.join(dir, 'model') })).toThrow(
      "Input 'base-image' is required in model-layer mode",
    );
    expect(() => read({ mode: 'model-layer', 'base-image': 'ai/b:1' })).toThrow(
      "Input 'model-path' is required",
    );
  });

  it('masks the password before anything can fail', () => {
    const logger = new MemoryLogger();
    expect(() =>
      readSettings(inputs({ password: 's3cret-value', registry: 'BAD' }), {}, logger),
    ).toThrow(/Invalid registry/);
    expect(logger.secrets).toContain('s3cret-value');
  });

  it('tags <commit>-<model> by default and labels revision, source and model provenance', () => {
    const settings = read(
      {
        'model-path': dir,
        'model-files': JSON.stringify([
          {
            name: 'm.bin',
            path: path.join(dir, 'weights', 'm.bin'),
            uri: 'https://a/m.bin',
            etag: '"0x1"',
            sha256: 'ab'.repeat(32),
            size: 2,
          },
        ]),
        labels: 'team=vision\norg.opencontainers.image.source=https://example.com/override',
      },
      {
        GITHUB_SHA: '0123456789abcdef0123',
        GITHUB_REPOSITORY: 'o/r',
        SOURCE_DATE_EPOCH: '1700000000',
      },
    );
    const modelDigest = 'f'.repeat(64);
    expect(defaultTag(settings.revision, modelDigest)).toBe('0123456789ab-ffffffffffff');
    expect(defaultTag(undefined, modelDigest)).toBeUndefined();
    const labels = imageLabels(settings, modelDigest, undefined);
    expect(labels).toMatchObject({
      'org.opencontainers.image.revision': '0123456789abcdef0123',
      'org.opencontainers.image.source': 'https://example.com/override',
      'org.opencontainers.image.created': '2023-11-14T22:13:20.000Z',
      'ai.model.digest': modelDigest,
      team: 'vision',
    });
    expect(JSON.parse(labels['ai.model.files'])).toEqual([
      {
        name: 'm.bin',
        // The path within the model, not the runner's directory.
        path: 'weights/m.bin',
        uri: 'https://a/m.bin',
        etag: '"0x1"',
        sha256: 'ab'.repeat(32),
        size: 2,
      },
    ]);
  });

  it("takes docker/metadata-action's tags and labels outputs as they are", () => {
    // What metadata-action writes for `images: myacr.azurecr.io/ai/app` on a v1.2.0 tag push.
    const settings = read({
      tags: [
        'myacr.azurecr.io/ai/app:1.2.0',
        'myacr.azurecr.io/ai/app:1.2',
        'myacr.azurecr.io/ai/app:latest',
        'myacr.azurecr.io/ai/app:sha-0123456',
      ].join('\n'),
      labels: [
        'org.opencontainers.image.title=app',
        'org.opencontainers.image.description=',
        'org.opencontainers.image.url=https://github.com/octo-org/app',
        'org.opencontainers.image.source=https://github.com/octo-org/app',
        'org.opencontainers.image.version=1.2.0',
        'org.opencontainers.image.created=2024-05-01T10:00:00.000Z',
        'org.opencontainers.image.revision=0123456789abcdef0123456789abcdef01234567',
        'org.opencontainers.image.licenses=MIT',
        'com.example.query=a=b',
      ].join('\n'),
    });
    expect(settings.tags).toEqual(['1.2.0', '1.2', 'latest', 'sha-0123456']);
    expect(settings.labels).toEqual({
      'org.opencontainers.image.title': 'app',
      'org.opencontainers.image.description': '',
      'org.opencontainers.image.url': 'https://github.com/octo-org/app',
      'org.opencontainers.image.source': 'https://github.com/octo-org/app',
      'org.opencontainers.image.version': '1.2.0',
      'org.opencontainers.image.created': '2024-05-01T10:00:00.000Z',
      'org.opencontainers.image.revision': '0123456789abcdef0123456789abcdef01234567',
      'org.opencontainers.image.licenses': 'MIT',
      'com.example.query': 'a=b',
    });
    // Bare tags and references mix; a reference without a registry is in this one.
    expect(read({ tags: 'v1, ai/app:v2,myacr.azurecr.io/ai/app:v1' }).tags).toEqual(['v1', 'v2']);
  });

  it('refuses tag references to another registry or repository, or without a tag', () => {
    expect(() => read({ tags: 'ghcr.io/octo-org/app:1.2' })).toThrow(
      "Invalid tags entry 'ghcr.io/octo-org/app:1.2': it names 'ghcr.io/octo-org/app', but this " +
        "step pushes to 'myacr.azurecr.io/ai/app'. Expected a bare tag such as 1.2, or a " +
        'reference to this registry and repository such as myacr.azurecr.io/ai/app:1.2.',
    );
    expect(() => read({ tags: 'myacr.azurecr.io/ai/other:1.2' })).toThrow(
      /it names 'myacr\.azurecr\.io\/ai\/other'/,
    );
    expect(() => read({ tags: 'myacr.azurecr.io/ai/app' })).toThrow(
      "Invalid tags entry 'myacr.azurecr.io/ai/app': expected a tag to push",
    );
    expect(() => read({ tags: `myacr.azurecr.io/ai/app@sha256:${'a'.repeat(64)}` })).toThrow(
      /expected a tag to push, such as myacr\.azurecr\.io\/ai\/app:1\.2, not a digest/,
    );
    expect(() => read({ tags: 'myacr.azurecr.io/ai/App:1' })).toThrow(/Invalid tags/);
  });
});
