import { ConfigurationError, quote } from '../../common/errors';
import { MANIFEST_TYPES, type FetchedManifest, type RegistryClient } from './client';

export interface Descriptor {
  mediaType: string;
  digest: string;
  size: number;
  annotations?: Record<string, string>;
  platform?: { os: string; architecture: string; variant?: string };
}

export interface ImageManifest {
  schemaVersion: 2;
  mediaType?: string;
  config: Descriptor;
  layers: Descriptor[];
  annotations?: Record<string, string>;
}

export interface ImageConfig {
  architecture?: string;
  os?: string;
  created?: string;
  config?: { Labels?: Record<string, string> | null; [key: string]: unknown };
  rootfs: { type: 'layers'; diff_ids: string[] };
  history?: Array<{
    created?: string;
    created_by?: string;
    comment?: string;
    empty_layer?: boolean;
  }>;
  [key: string]: unknown;
}

/** A single-platform image as read from the registry. */
export interface BaseImage {
  manifest: ImageManifest;
  mediaType: string;
  config: ImageConfig;
  digest: string;
}

/** The media type of an uncompressed layer in each manifest format. */
export function uncompressedLayerType(manifestType: string): string {
  return manifestType === MANIFEST_TYPES.dockerManifest
    ? 'application/vnd.docker.image.rootfs.diff.tar'
    : 'application/vnd.oci.image.layer.v1.tar';
}

/**
 * Reads the base image's manifest and config. A multi-platform index resolves to the entry for
 * `platform` (os/arch[/variant]); an index without it is refused, naming what it has.
 */
export async function readBaseImage(
  client: RegistryClient,
  repository: string,
  reference: string,
  platform: string,
  display: string,
): Promise<BaseImage> {
  let fetched = await client.getManifest(repository, reference);
  if (!fetched) {
    throw new ConfigurationError(
      `base-image ${quote(display)} does not exist in ${client.registry} (no manifest for ` +
        `${repository}:${reference}). Push the app image without the model first, or fix the reference.`,
    );
  }
  if (
    fetched.mediaType === MANIFEST_TYPES.ociIndex ||
    fetched.mediaType === MANIFEST_TYPES.dockerList
  ) {
    fetched = await pickPlatform(client, repository, fetched, platform, display);
  }
  if (
    fetched.mediaType !== MANIFEST_TYPES.ociManifest &&
    fetched.mediaType !== MANIFEST_TYPES.dockerManifest
  ) {
    throw new ConfigurationError(
      `base-image ${quote(display)} has manifest type ${quote(fetched.mediaType)}; expected an OCI ` +
        'image manifest or a Docker v2 schema 2 manifest (or an index of them).',
    );
  }
  const manifest = JSON.parse(fetched.body.toString('utf8')) as ImageManifest;
  const config = JSON.parse(
    (await client.getBlob(repository, manifest.config.digest)).toString('utf8'),
  ) as ImageConfig;
  if (config.rootfs?.diff_ids?.length !== manifest.layers.length) {
    throw new Error(
      `base-image ${display}: its config lists ${config.rootfs?.diff_ids?.length} layers, its manifest ${manifest.layers.length}`,
    );
  }
  return { manifest, mediaType: fetched.mediaType, config, digest: fetched.digest };
}

async function pickPlatform(
  client: RegistryClient,
  repository: string,
  index: FetchedManifest,
  platform: string,
  display: string,
): Promise<FetchedManifest> {
  const [os, architecture, variant] = platform.split('/');
  const entries = (JSON.parse(index.body.toString('utf8')) as { manifests: Descriptor[] })
    .manifests;
  const match = entries.find(
    (entry) =>
      entry.platform?.os === os &&
      entry.platform?.architecture === architecture &&
      (variant === undefined || entry.platform?.variant === variant),
  );
  if (!match) {
    const available = entries
      .map((entry) =>
        entry.platform
          ? [entry.platform.os, entry.platform.architecture, entry.platform.variant]
              .filter(Boolean)
              .join('/')
          : 'unknown',
      )
      .join(', ');
    throw new ConfigurationError(
      `base-image ${quote(display)} is a multi-platform index without ${quote(platform)}; it has: ` +
        `${available}. Set 'platform' to one of them.`,
    );
  }
  const fetched = await client.getManifest(repository, match.digest);
  if (!fetched) throw new Error(`base-image ${display}: index entry ${match.digest} is missing`);
  return fetched;
}

/**
 * The new image: the base's layers plus the model layer, its config with the labels merged,
 * the model's diff_id and a history entry; the manifest in the base's own format.
 */
export function composeImage(
  base: BaseImage,
  layer: { digest: string; size: number },
  labels: Record<string, string>,
  created: string,
  description: string,
): { config: Buffer; manifestFor: (configDigest: string) => Buffer; mediaType: string } {
  const config: ImageConfig = JSON.parse(JSON.stringify(base.config));
  config.created = created;
  config.config = {
    ...(config.config ?? {}),
    Labels: { ...(config.config?.Labels ?? {}), ...labels },
  };
  // Uncompressed: the layer's digest is its diff_id.
  config.rootfs = { type: 'layers', diff_ids: [...base.config.rootfs.diff_ids, layer.digest] };
  config.history = [
    ...(config.history ?? []),
    { created, created_by: description, comment: 'action-build-push model layer' },
  ];
  const configBytes = Buffer.from(JSON.stringify(config));
  const mediaType = base.mediaType;
  const configType =
    mediaType === MANIFEST_TYPES.dockerManifest
      ? 'application/vnd.docker.container.image.v1+json'
      : 'application/vnd.oci.image.config.v1+json';
  return {
    config: configBytes,
    mediaType,
    manifestFor: (configDigest) => {
      const manifest: ImageManifest = {
        schemaVersion: 2,
        mediaType,
        config: { mediaType: configType, digest: configDigest, size: configBytes.length },
        layers: [
          ...base.manifest.layers,
          { mediaType: uncompressedLayerType(mediaType), digest: layer.digest, size: layer.size },
        ],
      };
      return Buffer.from(JSON.stringify(manifest));
    },
  };
}
