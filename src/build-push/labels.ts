import * as path from 'node:path';
import type { BuildPushSettings } from './inputs';
import type { ModelFile } from './model-files';

/** Label keys this action sets; the OCI ones plus model provenance. */
export const LABEL = {
  source: 'org.opencontainers.image.source',
  revision: 'org.opencontainers.image.revision',
  created: 'org.opencontainers.image.created',
  modelDigest: 'ai.model.digest',
  modelFiles: 'ai.model.files',
  modelDest: 'ai.model.dest',
  modelLayer: 'ai.model.layer',
  modelLayerFormat: 'ai.model.layer-format',
} as const;

/** Bumped whenever the tar layer's bytes for the same files would change. */
export const LAYER_FORMAT = '1';

/** `<commit, 12 chars>-<model digest, 12 chars>`, or just the commit without a model. */
export function defaultTag(
  revision: string | undefined,
  modelDigest: string | undefined,
): string | undefined {
  if (!revision) return undefined;
  return modelDigest
    ? `${revision.slice(0, 12)}-${modelDigest.slice(0, 12)}`
    : revision.slice(0, 12);
}

/** Label keys only this action sets; a user label may not replace them. */
export const RESERVED_LABEL_PREFIX = 'ai.model.';

/**
 * Every label the image gets: source, revision, creation time (`created`, the settings' unless
 * another is given), the model digest and, per model file, its name, path, blob URI,
 * ETag/version and sha256 (paths relative to the model directory; from fetch-model's `files` output when given, else the state file's
 * path, size and sha256), then the user's own labels, which win.
 */
export function imageLabels(
  settings: BuildPushSettings,
  modelDigest: string | undefined,
  files: ModelFile[] | undefined,
  created = settings.created,
): Record<string, string> {
  const labels: Record<string, string> = {};
  if (settings.source) labels[LABEL.source] = settings.source;
  if (settings.revision) labels[LABEL.revision] = settings.revision;
  labels[LABEL.created] = created;
  if (modelDigest) labels[LABEL.modelDigest] = modelDigest;
  if (settings.modelFiles) {
    labels[LABEL.modelFiles] = JSON.stringify(
      settings.modelFiles.map((file) => ({
        name: file.name,
        // Where the file is in the model (and under model-dest in the image), never where the
        // runner kept it: the runner's directories are none of the image's business.
        path:
          file.path && settings.modelPath
            ? modelRelative(settings.modelPath, file.path)
            : undefined,
        uri: file.uri,
        etag: file.etag,
        'version-id': file['version-id'] ?? undefined,
        sha256: file.sha256,
        size: file.size,
      })),
    );
  } else if (files) {
    labels[LABEL.modelFiles] = JSON.stringify(
      files.map((file) => ({ path: file.relative, size: file.size, sha256: file.sha256 })),
    );
  }
  return { ...labels, ...settings.labels };
}

function modelRelative(modelPath: string, file: string): string {
  return path
    .relative(path.resolve(modelPath), path.resolve(modelPath, file))
    .split(path.sep)
    .join('/');
}
