import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { ExecOptions } from '@actions/exec';
import { MemoryLogger } from '../../src/common/logger';
import { DockerCli } from '../../src/build-push/docker';
import { createStepDockerConfig, layeredConfig } from '../../src/build-push/docker-config';
import { buildCommand } from '../../src/build-push/dockerfile-mode';
import { installBuildxPlugin, recordedBuildxCall } from '../servers/buildx-plugin';

const REGISTRY = 'myacr.azurecr.io';

describe('build-push and the docker CLI', () => {
  let root: string;
  let userConfig: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'build-push-docker-'));
    userConfig = path.join(root, 'user-docker');
    mkdirSync(userConfig);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const settings = {
    dockerfile: '/w/app/Dockerfile',
    buildArgs: ['A=1', 'B=x y'],
    context: '/w/app',
  };
  const references = [`${REGISTRY}/ai/app:abc-def`, `${REGISTRY}/ai/app:latest`];
  const labels = { 'org.opencontainers.image.revision': 'abc', 'ai.model.digest': 'def' };

  it('builds with `docker buildx build --load` when buildx is there, `docker build` when not', () => {
    const rest = [
      '--file',
      '/w/app/Dockerfile',
      '--tag',
      `${REGISTRY}/ai/app:abc-def`,
      '--tag',
      `${REGISTRY}/ai/app:latest`,
      '--label',
      'org.opencontainers.image.revision=abc',
      '--label',
      'ai.model.digest=def',
      '--build-arg',
      'A=1',
      '--build-arg',
      'B=x y',
      '/w/app',
    ];
    expect(buildCommand(settings, references, labels, true)).toEqual([
      'buildx',
      'build',
      '--load',
      ...rest,
    ]);
    expect(buildCommand(settings, references, labels, false)).toEqual(['build', ...rest]);
  });

  it("finds the buildx plugin the user installed (setup-buildx-action's place) and runs it with the user's builder", async () => {
    const env = { PATH: process.env.PATH, HOME: root, DOCKER_CONFIG: userConfig };
    const without = createStepDockerConfig(root, env, REGISTRY, new MemoryLogger());
    expect(await new DockerCli(new MemoryLogger(), without.env).hasBuildx()).toBe(false);

    const record = path.join(root, 'buildx-call');
    installBuildxPlugin(userConfig, record);
    mkdirSync(path.join(userConfig, 'buildx', 'instances'), { recursive: true });
    const step = createStepDockerConfig(
      root,
      { ...env, BUILDX_BUILDER: 'builder-from-setup-buildx' },
      REGISTRY,
      new MemoryLogger(),
    );
    const logger = new MemoryLogger();
    const docker = new DockerCli(logger, step.env);
    expect(await docker.hasBuildx()).toBe(true);

    const command = buildCommand(settings, references, labels, true);
    await expect(docker.run(command, { stream: true })).rejects.toThrow(
      /docker buildx failed \(exit 1\): ERROR: this buildx stand-in builds nothing/,
    );
    const call = recordedBuildxCall(record)!;
    expect(call.args).toEqual(command);
    expect(call.env).toEqual({
      BUILDX_BUILDER: 'builder-from-setup-buildx',
      BUILDX_CONFIG: path.join(userConfig, 'buildx'),
      DOCKER_CONFIG: step.directory,
    });
    expect(logger.lines).toContain(`$ docker ${command.join(' ')}`);
  });

  it('says when docker is not installed', async () => {
    const docker = new DockerCli(
      new MemoryLogger(),
      { PATH: process.env.PATH ?? '' },
      undefined,
      'docker-not-here',
    );
    await expect(docker.run(['version'])).rejects.toThrow(
      'docker is not installed or not on PATH (docker-not-here); dockerfile mode and the smoke test need it',
    );
  });

  it('gives docker login the password on stdin only, never in its arguments or the log', async () => {
    const calls: Array<{ args: string[]; options: ExecOptions }> = [];
    const logger = new MemoryLogger();
    const docker = new DockerCli(logger, { DOCKER_CONFIG: '/tmp/x' }, async (_, args, options) => {
      calls.push({ args, options });
      return { exitCode: 0, stdout: 'Login Succeeded\n', stderr: '' };
    });
    const password = 'refresh-token-' + 'x'.repeat(40);
    await docker.login(REGISTRY, '00000000-0000-0000-0000-000000000000', password);
    expect(calls).toHaveLength(1);
    expect(calls[0].args).toEqual([
      'login',
      REGISTRY,
      '--username',
      '00000000-0000-0000-0000-000000000000',
      '--password-stdin',
    ]);
    expect(calls[0].options.input?.toString()).toBe(password);
    expect(calls[0].options.env).toEqual({ DOCKER_CONFIG: '/tmp/x' });
    expect(logger.secrets).toContain(password);
    expect(logger.lines.join('\n')).not.toContain(password);
  });

  describe("the step's docker config, layered over the user's", () => {
    const user = {
      auths: {
        'ghcr.io': { auth: 'dXNlcjpwYXNz' },
        'https://index.docker.io/v1/': {},
        [`https://${REGISTRY}`]: { auth: 'b2xkOm9sZA==' },
        'quay.io': {},
      },
      credHelpers: { '123.dkr.ecr.eu-west-1.amazonaws.com': 'ecr-login', [REGISTRY]: 'acr-env' },
      credsStore: 'pass',
      proxies: { default: { httpsProxy: 'http://proxy:3128' } },
      psFormat: 'table {{.ID}}',
    };

    it("keeps the user's sign-ins to other registries, and none for this step's registry", () => {
      expect(layeredConfig(user, REGISTRY)).toEqual({
        auths: { 'ghcr.io': { auth: 'dXNlcjpwYXNz' }, [REGISTRY]: {} },
        // The credsStore held the sign-ins whose auths entries are empty.
        credHelpers: {
          'https://index.docker.io/v1/': 'pass',
          'quay.io': 'pass',
          '123.dkr.ecr.eu-west-1.amazonaws.com': 'ecr-login',
        },
        proxies: { default: { httpsProxy: 'http://proxy:3128' } },
      });
    });

    it("reads the user's config and never writes it; links plugins and contexts", () => {
      const file = path.join(userConfig, 'config.json');
      writeFileSync(file, JSON.stringify(user));
      mkdirSync(path.join(userConfig, 'cli-plugins'));
      mkdirSync(path.join(userConfig, 'contexts'));
      const before = readFileSync(file, 'utf8');
      const logger = new MemoryLogger();
      const step = createStepDockerConfig(
        root,
        { HOME: root, DOCKER_CONFIG: userConfig },
        REGISTRY,
        logger,
      );
      expect(step.directory.startsWith(path.join(root, 'build-push-docker-'))).toBe(true);
      expect(lstatSync(path.join(step.directory, 'config.json')).mode & 0o777).toBe(0o600);
      expect(readlinkSync(path.join(step.directory, 'cli-plugins'))).toBe(
        path.join(userConfig, 'cli-plugins'),
      );
      expect(readlinkSync(path.join(step.directory, 'contexts'))).toBe(
        path.join(userConfig, 'contexts'),
      );
      expect(step.env.DOCKER_CONFIG).toBe(step.directory);
      expect(step.env.BUILDX_CONFIG).toBeUndefined();
      expect(step.carried.sort()).toEqual([
        '123.dkr.ecr.eu-west-1.amazonaws.com',
        'ghcr.io',
        'https://index.docker.io/v1/',
        'quay.io',
      ]);
      expect(readFileSync(file, 'utf8')).toBe(before);
      rmSync(step.directory, { recursive: true });
      expect(existsSync(path.join(userConfig, 'cli-plugins'))).toBe(true);
    });

    it('warns about an unreadable user config and starts from nothing', () => {
      writeFileSync(path.join(userConfig, 'config.json'), '{not json');
      const logger = new MemoryLogger();
      const step = createStepDockerConfig(root, { DOCKER_CONFIG: userConfig }, REGISTRY, logger);
      expect(JSON.parse(readFileSync(path.join(step.directory, 'config.json'), 'utf8'))).toEqual({
        auths: { [REGISTRY]: {} },
      });
      expect(logger.lines.join('\n')).toMatch(
        /warning: Could not read the docker config .*config\.json \(.*\); sign-ins to other registries \(docker\/login-action\) are not available to this step\./,
      );
    });
  });
});
