import { ConfigurationError } from '../common/errors';
import { formatBytes } from '../common/format';
import type { Logger } from '../common/logger';
import type { DockerCli } from './docker';
import { dockerfileMode } from './dockerfile-mode';
import { findSameImage } from './existing';
import type { BuildPushSettings } from './inputs';
import { defaultTag, imageLabels } from './labels';
import { computeModelDigest, listModelFiles, type ModelFile } from './model-files';
import { modelLayerMode } from './model-layer-mode';
import type { RegistryClient } from './oci/client';
import { phaseRunner, type BuildPushResult } from './result';

export interface BuildPushDeps {
  logger: Logger;
  docker: DockerCli;
  /** The registry client, made on first use (a build that does not push needs none). */
  client: () => RegistryClient;
}

/**
 * The action's logic: model files and digest → tags and labels → skip when the registry already
 * has this commit with this model → build (dockerfile or model-layer mode), smoke test, push.
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

  let files: ModelFile[] | undefined;
  let modelDigest = settings.modelDigest;
  if (settings.modelPath) {
    files = await phase('Model', async () => {
      const listed = await listModelFiles(settings.modelPath!);
      if (!modelDigest) {
        logger.info(
          "no model-digest given: hashing the model files (pass fetch-model's output to avoid this)",
        );
        modelDigest = await computeModelDigest(listed);
      }
      const bytes = listed.reduce((sum, file) => sum + file.size, 0);
      logger.info(`${listed.length} file(s), ${formatBytes(bytes)}, model digest ${modelDigest}`);
      return listed;
    });
    result.modelFiles = files.length;
    result.modelBytes = files.reduce((sum, file) => sum + file.size, 0);
  }
  result.modelDigest = modelDigest;

  const fallbackTag = defaultTag(settings.revision, modelDigest);
  const tags = settings.tags.length > 0 ? settings.tags : fallbackTag ? [fallbackTag] : [];
  if (tags.length === 0) {
    throw new ConfigurationError(
      "No tag to push: GITHUB_SHA is not set, so the default tag <commit>-<model digest> cannot be made. Set 'tags'.",
    );
  }
  result.tags = tags;
  const labels = imageLabels(settings, modelDigest, files);

  if (settings.skipExisting && settings.push) {
    const existing = await phase('Existing image', () =>
      findSameImage(
        deps.client(),
        settings.repository,
        tags[0],
        settings.revision,
        modelDigest,
        logger,
      ),
    );
    if (existing) {
      result.skipped = true;
      result.digest = existing.digest;
      result.image = `${settings.registry}/${settings.repository}@${existing.digest}`;
      logger.info(`skip-existing: nothing to build or push, ${result.image} is current`);
      return result;
    }
  }

  if (settings.mode === 'dockerfile') {
    await dockerfileMode(settings, files, labels, tags, deps, phase, result);
  } else {
    await modelLayerMode(settings, files!, modelDigest!, labels, tags, deps, phase, result);
  }
  return result;
}
