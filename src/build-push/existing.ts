import type { Logger } from '../common/logger';
import type { RegistryClient } from './oci/client';
import type { ImageConfig, ImageManifest } from './oci/image';
import { LABEL, LAYER_FORMAT } from './labels';

/**
 * An image already in the registry, with its labels. Its tag and labels are only claims (anyone
 * with push rights can write them); its digests are what the registry checked.
 */
export interface ExistingImage {
  tag: string;
  digest: string;
  /** The manifest's media type and size in bytes. */
  mediaType: string;
  size: number;
  labels: Record<string, string>;
  manifest: ImageManifest;
  config: ImageConfig;
}

/** The image a tag points at now; its config is read by the digest the manifest names. */
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
  return {
    tag,
    digest: fetched.digest,
    mediaType: fetched.mediaType,
    size: fetched.body.length,
    labels: config.config?.Labels ?? {},
    manifest,
    config,
  };
}

/**
 * Model-layer mode: an earlier image of this repository whose labels claim a model layer for the
 * same model digest, destination and layer format (tags ending in the model digest's first 12
 * characters, the default tag scheme, are looked at first). Only a hint that the layer may be
 * there: the caller computes the layer's digest itself before reusing anything.
 */
export async function findModelLayerClaim(
  client: RegistryClient,
  repository: string,
  modelDigest: string,
  modelDest: string,
  preferredTags: string[],
): Promise<{ digest: string; from: string } | undefined> {
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
    const labels = existing?.labels;
    if (
      !labels ||
      labels[LABEL.modelDigest] !== modelDigest ||
      labels[LABEL.modelDest] !== modelDest ||
      labels[LABEL.modelLayerFormat] !== LAYER_FORMAT
    ) {
      continue;
    }
    const layer = existing.manifest.layers.find(
      (candidate) => candidate.digest === labels[LABEL.modelLayer],
    );
    if (layer) return { digest: layer.digest, from: tag };
  }
  return undefined;
}

/** Why an existing image is not the one this run would push, for the log; undefined when it is. */
export function differenceFrom(
  existing: ExistingImage,
  expected: { digest: string; manifest: ImageManifest; modelLayer: string },
): string | undefined {
  if (existing.digest === expected.digest) return undefined;
  const layers = (manifest: ImageManifest) => manifest.layers.map((layer) => layer.digest);
  const theirs = layers(existing.manifest);
  const ours = layers(expected.manifest);
  if (theirs.at(-1) !== expected.modelLayer && theirs.length === ours.length) {
    return `its last layer is ${theirs.at(-1)}, the model layer computed here is ${expected.modelLayer}`;
  }
  if (theirs.join() !== ours.join()) {
    return 'its layers are not the base image layers plus the model layer computed here';
  }
  return 'its config differs from the one this run would write (labels, base image config)';
}

/** Logs the outcome of a skip-existing check. */
export function logExisting(
  logger: Logger,
  reference: string,
  existing: ExistingImage | undefined,
  difference: string | undefined,
): void {
  if (!existing) logger.info(`${reference} does not exist yet`);
  else if (!difference) {
    logger.info(
      `${reference} (${existing.digest}) is exactly the image this run would push: same base ` +
        'layers, the model layer computed here from the verified files, the same config',
    );
  } else
    logger.info(
      `${reference} exists but is not this run's image (${difference}); it will be replaced`,
    );
}
