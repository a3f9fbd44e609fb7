import { ConfigurationError, quote } from '../common/errors';
import { formatBytes } from '../common/format';
import type { Logger } from '../common/logger';
import type { DockerCli } from './docker';
import { dockerfileMode } from './dockerfile-mode';
import type { BuildPushSettings } from './inputs';
import { defaultTag } from './labels';
import { resolveModelFiles, type ModelSet } from './model-files';
import { modelLayerMode } from './model-layer-mode';
import type { RegistryClient } from './oci/client';
import { phaseRunner, type BuildPushResult } from './result';

export interface BuildPushDeps {
  logger: Logger;
  /** docker with this step's private config (see docker-config.ts). */
  docker: DockerCli;
  /** The registry client, made on first use (a build that does not push needs none). */
  client: () => RegistryClient;
  /**
   * Whether registry credentials are at hand without failing (a password, or OIDC with the
   * id-token permission): a build that pushes nothing signs in only then.
   */
  canSignIn: boolean;
}

/** What both modes use: the logger, docker, the registry, and the one sign-in of the step. */
export interface ModeDeps extends BuildPushDeps {
  /** `docker login` to the registry in this step's docker config, once per step. */
  signIn: () => Promise<void>;
}

/**
 * The action's logic: the model files (exactly those named, each to be checked against its
 * sha256) and their digest → tags → build (dockerfile or model-layer mode, each deciding
 * whether the registry already holds this very image), smoke test, push.
 */
export async function buildPush(
  settings: BuildPushSettings,
  deps: BuildPushDeps,
): Promise<BuildPushResult> {
  const { logger } = deps;
  const result: BuildPushResult = {
    mode: settings.mode,
    image: '',
    tags: [],
    skipped: false,
    pushed: false,
    bytesUploaded: 0,
    modelFiles: 0,
    modelBytes: 0,
    blobs: [],
    phases: [],
  };
  const phase = phaseRunner((name, fn) => logger.group(name, fn), result.phases);

  let model: ModelSet | undefined;
  if (settings.modelPath) {
    model = await phase('Model', async () => {
      const resolved = await resolveModelFiles(settings.modelPath!, settings.modelFiles);
      if (settings.modelDigest && settings.modelDigest !== resolved.digest) {
        throw new ConfigurationError(
          `model-digest ${quote(settings.modelDigest)} does not match the files ${resolved.source} ` +
            `names, whose digest is ${resolved.digest}. Expected fetch-model's model-digest and ` +
            'files outputs of the same run.',
        );
      }
      const bytes = resolved.files.reduce((sum, file) => sum + file.size, 0);
      logger.info(
        `${resolved.files.length} file(s) named by ${resolved.source}, ${formatBytes(bytes)}, ` +
          `model digest ${resolved.digest}; each file's sha256 is checked as it is read`,
      );
      return resolved;
    });
    result.modelFiles = model.files.length;
    result.modelBytes = model.files.reduce((sum, file) => sum + file.size, 0);
  }
  result.modelDigest = model?.digest ?? settings.modelDigest;

  const fallbackTag = defaultTag(settings.revision, result.modelDigest);
  const tags = settings.tags.length > 0 ? settings.tags : fallbackTag ? [fallbackTag] : [];
  if (tags.length === 0) {
    throw new ConfigurationError(
      "No tag to push: GITHUB_SHA is not set, so the default tag <commit>-<model digest> cannot be made. Set 'tags'.",
    );
  }
  result.tags = tags;

  let signedIn: Promise<void> | undefined;
  const modeDeps: ModeDeps = {
    ...deps,
    signIn: () =>
      (signedIn ??= (async () => {
        const login = await deps.client().dockerLogin();
        await deps.docker.login(settings.registry, login.username, login.password);
      })()),
  };
  if (settings.mode === 'dockerfile') {
    await dockerfileMode(settings, model, tags, modeDeps, phase, result);
  } else {
    await modelLayerMode(settings, model!, tags, modeDeps, phase, result);
  }
  return result;
}
