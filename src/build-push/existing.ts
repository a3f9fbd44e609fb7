import type { Logger } from '../common/logger';
import type { RegistryClient } from './oci/client';
import type { ImageConfig, ImageManifest } from './oci/image';
import { LABEL, LAYER_FORMAT } from './labels';

/** An image already in the registry, with its labels. */
export interface ExistingImage {
  tag: string;
  digest: string;
  labels: Record<string, string>;
  manifest: ImageManifest;
}

export async function readExisting(
  client: RegistryClient,
  repository: string,
  tag: string,
): Promise<ExistingImage | undefined> {
  const fetched = await client.getManifest(repository, tag);
  if (!fetched) return undefined;
  const manifest = JSON.parse(fetched.body.toString('utf8')) as ImageManifest;
  if (!manifest.config) return undefined; // an index: not something this action pushed
  const config = JSON.parse(
    (await client.getBlob(repository, manifest.config.digest)).toString('utf8'),
  ) as ImageConfig;
  return { tag, digest: fetched.digest, labels: config.config?.Labels ?? {}, manifest };
}

/**
 * skip-existing: the first tag already holds an image of this commit and this model (both
 * labels equal), so there is nothing to build or push.
 */
export async function findSameImage(
  client: RegistryClient,
  repository: string,
  tag: string,
  revision: string | undefined,
  modelDigest: string | undefined,
  logger: Logger,
): Promise<ExistingImage | undefined> {
  const existing = await readExisting(client, repository, tag);
  if (!existing) {
    logger.info(`${repository}:${tag} does not exist yet`);
    return undefined;
  }
  const same =
    revision !== undefined &&
    existing.labels[LABEL.revision] === revision &&
    (existing.labels[LABEL.modelDigest] ?? '') === (modelDigest ?? '');
  logger.info(
    same
      ? `${repository}:${tag} already holds revision ${revision?.slice(0, 12)} with model ${modelDigest?.slice(0, 12) ?? '(none)'} (${existing.digest})`
      : `${repository}:${tag} exists with other labels (revision ${existing.labels[LABEL.revision] ?? '?'}, ` +
          `model ${existing.labels[LABEL.modelDigest] ?? '?'}); it will be replaced`,
  );
  return same ? existing : undefined;
}

/**
 * Model-layer mode: finds a model layer this repository already holds for the same model digest
 * and destination, by the labels of earlier images (tags ending in the model digest's first 12
 * characters, the default tag scheme, are looked at first). With it, neither reading nor
 * uploading the model is needed.
 */
export async function findModelLayer(
  client: RegistryClient,
  repository: string,
  modelDigest: string,
  modelDest: string,
  preferredTags: string[],
  logger: Logger,
): Promise<{ digest: string; size: number; from: string } | undefined> {
  const tags = await client.listTags(repository);
  const suffix = `-${modelDigest.slice(0, 12)}`;
  const candidates = [
    ...preferredTags.filter((tag) => tags.includes(tag)),
    ...tags.filter((tag) => tag.endsWith(suffix)).reverse(),
  ];
  const seen = new Set<string>();
  for (const tag of candidates) {
    if (seen.has(tag) || seen.size >= 8) continue;
    seen.add(tag);
    const existing = await readExisting(client, repository, tag).catch(() => undefined);
    if (!existing) continue;
    const labels = existing.labels;
    if (
      labels[LABEL.modelDigest] !== modelDigest ||
      labels[LABEL.modelDest] !== modelDest ||
      labels[LABEL.modelLayerFormat] !== LAYER_FORMAT
    ) {
      continue;
    }
    const layer = existing.manifest.layers.find(
      (candidate) => candidate.digest === labels[LABEL.modelLayer],
    );
    if (layer && (await client.hasBlob(repository, layer.digest))) {
      logger.info(`model layer ${layer.digest} found in ${repository}:${tag}`);
      return { digest: layer.digest, size: layer.size, from: tag };
    }
  }
  return undefined;
}
