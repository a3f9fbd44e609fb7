import { existsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { readAzureIdentity, type AzureIdentitySettings } from '../common/credential';
import { ConfigurationError, quote } from '../common/errors';
import type { Inputs } from '../common/inputs';
import type { Logger } from '../common/logger';
import {
  parseImageReference,
  validateRegistry,
  validateRepository,
  validateTag,
  type ImageReference,
} from '../common/image-reference';
import { RESERVED_LABEL_PREFIX } from './labels';
import { DEFAULT_CHUNK_SIZE } from './oci/client';
import type { SmokeSettings } from './smoke';

export const MODES = ['dockerfile', 'model-layer'] as const;
export type Mode = (typeof MODES)[number];

/** One entry of fetch-model's `files` output, as far as provenance labels need it. */
export interface ModelFileProvenance {
  name: string;
  path?: string;
  uri?: string;
  etag?: string;
  'version-id'?: string | null;
  sha256?: string;
  size?: number;
}

export type RegistryAuth =
  | { kind: 'oidc'; identity: AzureIdentitySettings }
  | { kind: 'password'; username: string; password: string };

/** Everything action-build-push was asked to do, checked and typed. */
export interface BuildPushSettings {
  /** Registry host (and port), e.g. myacr.azurecr.io. */
  registry: string;
  /** Repository inside the registry, e.g. ai/image-classifier. */
  repository: string;
  /** dockerfile: docker build; model-layer: the model as a layer on base-image, no daemon. */
  mode: Mode;
  /** Build context, absolute. */
  context: string;
  /** Dockerfile, absolute (dockerfile mode). */
  dockerfile: string;
  /** `K=V` build arguments (dockerfile mode). */
  buildArgs: string[];
  /** The model directory (fetch-model's `path`), absolute; required in model-layer mode. */
  modelPath?: string;
  /** fetch-model's `model-digest` (hex); must match the files' sha256s when given. */
  modelDigest?: string;
  /** fetch-model's `files` output: the files to ship, their sha256s, provenance labels. */
  modelFiles?: ModelFileProvenance[];
  /** Where the model is staged inside the context (dockerfile mode), relative. */
  modelContextDir: string;
  /** The app image without the model (model-layer mode). */
  baseImage?: ImageReference;
  /** Absolute directory of the model inside the image (model-layer mode). */
  modelDest: string;
  /** os/arch picked from a multi-platform base index. */
  platform: string;
  /** Tags given (bare, or taken from full references); empty means `<sha12>-<model12>`. */
  tags: string[];
  /** Extra labels. */
  labels: Record<string, string>;
  /** Whether to push at all (false: build and smoke-test only). */
  push: boolean;
  /** Skip everything when the first tag already holds this revision and model. */
  skipExisting: boolean;
  /** The smoke test, or undefined when smoke-port is empty. */
  smoke?: SmokeSettings;
  /** How to sign in to the registry. */
  auth: RegistryAuth;
  /** The commit being built (GITHUB_SHA). */
  revision?: string;
  /** The repository URL (GITHUB_SERVER_URL/GITHUB_REPOSITORY). */
  source?: string;
  /** The image's creation time, RFC 3339 (SOURCE_DATE_EPOCH when set). */
  created: string;
  /** Bytes per PATCH in a chunked upload (model-layer mode). */
  chunkSize: number;
}

const MiB = 1024 * 1024;

export function readSettings(
  inputs: Inputs,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): BuildPushSettings {
  // The password is masked before anything else is read, so no later error can print it.
  const password = inputs.optional('password');
  if (password) logger.mask(password);
  const username = inputs.optional('username');
  const identity = readAzureIdentity(inputs, env);

  const registry = validateRegistry(
    inputs.required('registry', "the registry host, e.g. 'myacr.azurecr.io'"),
  );
  const repository = validateRepository(
    inputs.required('repository', "the repository to push to, e.g. 'ai/image-classifier'"),
  );
  const mode = inputs.choice('mode', MODES, 'dockerfile');
  const context = path.resolve(inputs.string('context', '.'));
  const dockerfile = path.resolve(inputs.string('dockerfile', path.join(context, 'Dockerfile')));
  const buildArgs = inputs.lines('build-args');
  for (const arg of buildArgs) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(arg)) {
      throw new ConfigurationError(
        `Invalid build-args line ${quote(arg)}. Expected NAME=VALUE, one per line.`,
      );
    }
  }

  const modelPathInput = inputs.optional('model-path');
  const modelPath = modelPathInput ? path.resolve(modelPathInput) : undefined;
  if (modelPath && !(existsSync(modelPath) && statSync(modelPath).isDirectory())) {
    throw new ConfigurationError(
      `model-path ${quote(modelPathInput!)} is not a directory. Expected the directory fetch-model wrote (its 'path' output).`,
    );
  }
  const modelDigest = parseModelDigest(inputs.optional('model-digest'));
  const modelFiles = parseModelFiles(inputs.optional('model-files'));
  const modelContextDir = inputs.string('model-context-dir', 'model');
  const baseImageText = inputs.optional('base-image');
  const modelDest = inputs.string('model-dest', '/app/model');
  if (!modelDest.startsWith('/') || modelDest === '/' || /(^|\/)\.\.?(\/|$)/.test(modelDest)) {
    throw new ConfigurationError(
      `Invalid model-dest ${quote(modelDest)}. Expected an absolute directory such as /app/model.`,
    );
  }
  const platform = inputs.string('platform', 'linux/amd64');
  if (!/^[a-z0-9]+\/[a-z0-9_]+(\/[a-z0-9]+)?$/.test(platform)) {
    throw new ConfigurationError(
      `Invalid platform ${quote(platform)}. Expected os/arch such as linux/amd64 or linux/arm64/v8.`,
    );
  }

  if (mode === 'dockerfile') {
    if (!existsSync(context) || !statSync(context).isDirectory()) {
      throw new ConfigurationError(
        `context ${quote(context)} is not a directory. Expected the build context, e.g. '.'.`,
      );
    }
    if (!existsSync(dockerfile)) {
      throw new ConfigurationError(
        `Dockerfile ${quote(dockerfile)} does not exist. Set 'dockerfile' (default <context>/Dockerfile) or 'context'.`,
      );
    }
  } else {
    if (!modelPath) {
      throw new ConfigurationError(
        "Input 'model-path' is required in model-layer mode: the directory fetch-model wrote.",
      );
    }
    if (!baseImageText) {
      throw new ConfigurationError(
        "Input 'base-image' is required in model-layer mode: the app image without the model, e.g. 'ai/app-base:1.0' in the same registry.",
      );
    }
  }
  const baseImage = baseImageText
    ? withDefaultTag(parseImageReference(baseImageText, 'base-image', registry))
    : undefined;

  const tags = parseTags(inputs.list('tags'), registry, repository);
  const labels = parseLabels(inputs.lines('labels'));

  const smokePort = inputs.optional('smoke-port');
  let smoke: SmokeSettings | undefined;
  const smokePath = inputs.string('smoke-path', '/health');
  const timeoutSeconds = inputs.integer('smoke-timeout', 60, 1, 3600);
  const requestFile = inputs.optional('smoke-request');
  const requestPath = inputs.string('smoke-request-path', '/score');
  const expect = inputs.optional('smoke-expect');
  if (smokePort !== undefined) {
    const port = /^\d+$/.test(smokePort) ? Number(smokePort) : NaN;
    if (!(port >= 1 && port <= 65535)) {
      throw new ConfigurationError(
        `Invalid smoke-port ${quote(smokePort)}. Expected the container port the app listens on, e.g. 5000.`,
      );
    }
    for (const [name, value] of [
      ['smoke-path', smokePath],
      ['smoke-request-path', requestPath],
    ] as const) {
      if (!value.startsWith('/'))
        throw new ConfigurationError(
          `Invalid ${name} ${quote(value)}. Expected a path starting with /.`,
        );
    }
    const resolvedRequest = requestFile ? path.resolve(requestFile) : undefined;
    if (resolvedRequest && !existsSync(resolvedRequest)) {
      throw new ConfigurationError(
        `smoke-request ${quote(requestFile!)} does not exist. Expected a file holding the JSON body to POST.`,
      );
    }
    smoke = {
      port,
      path: smokePath,
      timeoutMs: timeoutSeconds * 1000,
      requestFile: resolvedRequest,
      requestPath,
      expect,
    };
  }

  let auth: RegistryAuth;
  if (username !== undefined || password !== undefined) {
    if (!username || !password) {
      throw new ConfigurationError(
        "Set both 'username' and 'password', or neither (to sign in to ACR with OIDC).",
      );
    }
    auth = { kind: 'password', username, password };
  } else {
    auth = { kind: 'oidc', identity };
  }

  const epoch = env.SOURCE_DATE_EPOCH;
  const created =
    epoch && /^\d+$/.test(epoch)
      ? new Date(Number(epoch) * 1000).toISOString()
      : new Date().toISOString();
  const server = env.GITHUB_SERVER_URL ?? 'https://github.com';
  return {
    registry,
    repository,
    mode,
    context,
    dockerfile,
    buildArgs,
    modelPath,
    modelDigest,
    modelFiles,
    modelContextDir,
    baseImage,
    modelDest: modelDest.replace(/\/+$/, ''),
    platform,
    tags,
    labels,
    push: inputs.boolean('push', true),
    skipExisting: inputs.boolean('skip-existing', true),
    smoke,
    auth,
    revision: env.GITHUB_SHA || undefined,
    source: env.GITHUB_REPOSITORY ? `${server}/${env.GITHUB_REPOSITORY}` : undefined,
    created,
    chunkSize: inputs.byteSize('chunk-size', DEFAULT_CHUNK_SIZE, 1 * MiB, 4096 * MiB),
  };
}

/**
 * `tags` entries: bare tags (`1.2`), or full references as docker/metadata-action writes them
 * (`myacr.azurecr.io/ai/app:1.2`), which must name this registry and repository.
 */
export function parseTags(entries: string[], registry: string, repository: string): string[] {
  const tags: string[] = [];
  for (const entry of entries) {
    if (!/[/:@]/.test(entry)) {
      tags.push(validateTag(entry));
      continue;
    }
    const reference = parseImageReference(entry, 'tags', registry);
    if (reference.registry !== registry || reference.repository !== repository) {
      throw new ConfigurationError(
        `Invalid tags entry ${quote(entry)}: it names ${quote(`${reference.registry}/${reference.repository}`)}, ` +
          `but this step pushes to ${quote(`${registry}/${repository}`)}. Expected a bare tag such as ` +
          `1.2, or a reference to this registry and repository such as ${registry}/${repository}:1.2.`,
      );
    }
    if (reference.digest || !reference.tag) {
      throw new ConfigurationError(
        `Invalid tags entry ${quote(entry)}: expected a tag to push, such as ` +
          `${registry}/${repository}:1.2${reference.digest ? ', not a digest' : ''}.`,
      );
    }
    tags.push(reference.tag);
  }
  return [...new Set(tags)];
}

/**
 * `labels`: `key=value` per line, as docker/metadata-action writes them (a value may be empty or
 * hold `=`). Keys under `ai.model.` are this action's own and may not be replaced.
 */
export function parseLabels(lines: string[]): Record<string, string> {
  const labels: Record<string, string> = {};
  for (const line of lines) {
    const at = line.indexOf('=');
    const key = at > 0 ? line.slice(0, at).trim() : '';
    if (!key || /\s/.test(key)) {
      throw new ConfigurationError(
        `Invalid labels line ${quote(line)}. Expected key=value, one per line.`,
      );
    }
    if (key.startsWith(RESERVED_LABEL_PREFIX)) {
      throw new ConfigurationError(
        `Invalid labels line ${quote(line)}: labels under '${RESERVED_LABEL_PREFIX}' are set by ` +
          'build-push from the model it verified. Expected other keys.',
      );
    }
    labels[key] = line.slice(at + 1).trim();
  }
  return labels;
}

function parseModelDigest(value: string | undefined): string | undefined {
  if (value === undefined) return undefined;
  const hex = value.replace(/^sha256:/, '').toLowerCase();
  if (!/^[a-f0-9]{64}$/.test(hex)) {
    throw new ConfigurationError(
      `Invalid model-digest ${quote(value)}. Expected fetch-model's model-digest output: 64 hex digits.`,
    );
  }
  return hex;
}

function parseModelFiles(value: string | undefined): ModelFileProvenance[] | undefined {
  if (value === undefined) return undefined;
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    !parsed.every((item) => item && typeof item === 'object' && typeof item.name === 'string')
  ) {
    throw new ConfigurationError(
      `Invalid model-files ${quote(value)}. Expected fetch-model's files output: a JSON array of objects with name, uri, etag, sha256.`,
    );
  }
  return parsed as ModelFileProvenance[];
}

/** A base image named without tag or digest means `latest`, as docker pull reads it. */
function withDefaultTag(reference: ImageReference): ImageReference {
  return reference.tag || reference.digest ? reference : { ...reference, tag: 'latest' };
}
