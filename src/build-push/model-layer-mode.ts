import { createHash } from 'node:crypto';
import { ConfigurationError, quote } from '../common/errors';
import { formatBytes, formatDuration, formatRate } from '../common/format';
import type { Logger } from '../common/logger';
import type { DockerCli } from './docker';
import { findModelLayer } from './existing';
import type { BuildPushSettings } from './inputs';
import { LABEL, LAYER_FORMAT } from './labels';
import type { ModelFile } from './model-files';
import type { RegistryClient } from './oci/client';
import { composeImage, readBaseImage } from './oci/image';
import { formatReference } from '../common/image-reference';
import { TarLayer } from './oci/tar-layer';
import type { BuildPushResult } from './result';
import { smokeTest } from './smoke';

/**
 * Model-layer mode, no Docker daemon: the base image's manifest and config come from the
 * registry, the model becomes one uncompressed reproducible tar layer, each blob is uploaded
 * only when the repository lacks it (mounted from the base's repository when possible), and the
 * manifest goes last: first by digest (so the smoke test can pull it), then under each tag.
 */
export async function modelLayerMode(
  settings: BuildPushSettings,
  files: ModelFile[],
  modelDigest: string,
  labels: Record<string, string>,
  tags: string[],
  deps: { docker: DockerCli; client: () => RegistryClient; logger: Logger },
  phase: <T>(name: string, fn: () => Promise<T>) => Promise<T>,
  result: BuildPushResult,
): Promise<void> {
  const { logger } = deps;
  const client = deps.client();
  const base = settings.baseImage!;
  if (base.registry !== settings.registry) {
    throw new ConfigurationError(
      `base-image ${quote(formatReference(base))} is in another registry than ${quote(settings.registry)}. ` +
        'In model-layer mode the base image must live in the same registry (any repository), so its ' +
        'layers can be mounted instead of copied; push it there first.',
    );
  }
  const repository = settings.repository;

  const baseImage = await phase('Base image', async () => {
    const image = await readBaseImage(
      client,
      base.repository,
      base.digest ?? base.tag!,
      settings.platform,
      formatReference(base),
    );
    logger.info(
      `${formatReference(base)}: ${image.digest}, ${image.manifest.layers.length} layer(s), ${image.mediaType}`,
    );
    return image;
  });

  await phase('Base layers', async () => {
    for (const [index, layer] of [...baseImage.manifest.layers].entries()) {
      const what = `base layer ${index + 1}`;
      if (await client.hasBlob(repository, layer.digest)) {
        result.blobs.push({ what, digest: layer.digest, size: layer.size, status: 'exists' });
      } else if (
        base.repository !== repository &&
        (await client.mountBlob(repository, layer.digest, base.repository))
      ) {
        result.blobs.push({ what, digest: layer.digest, size: layer.size, status: 'mounted' });
      } else {
        throw new Error(
          `${what} ${layer.digest} is not in ${repository} and the registry would not mount it from ${base.repository}`,
        );
      }
      logger.info(`${what} ${layer.digest.slice(7, 19)}: ${result.blobs.at(-1)!.status}`);
    }
  });

  const layer = new TarLayer(files, settings.modelDest);
  const modelLayer = await phase('Model layer', async () => {
    const reusable = await findModelLayer(
      client,
      repository,
      modelDigest,
      settings.modelDest,
      tags,
      logger,
    );
    if (reusable && reusable.size === layer.size) {
      result.blobs.push({
        what: 'model layer',
        digest: reusable.digest,
        size: reusable.size,
        status: 'reused',
      });
      logger.info(
        `model layer already in ${repository} (from :${reusable.from}); 0 model bytes to upload`,
      );
      return reusable;
    }
    logger.info(
      `uploading the model as an uncompressed tar layer: ${files.length} file(s), ${formatBytes(layer.size)}, ` +
        `chunks of ${formatBytes(client.chunkSize)}`,
    );
    const started = Date.now();
    const upload = await client.uploadBlob(repository, {
      size: layer.size,
      read: (start, end) => layer.read(start, end),
    });
    const elapsed = Date.now() - started;
    result.bytesUploaded += upload.bytesSent;
    result.blobs.push({
      what: 'model layer',
      digest: upload.digest,
      size: layer.size,
      status: 'uploaded',
      resumes: upload.resumes,
    });
    logger.info(
      `model layer ${upload.digest}: ${formatBytes(layer.size)} in ${formatDuration(elapsed)} ` +
        `(${formatRate(layer.size, elapsed)})${upload.resumes ? `, resumed ${upload.resumes} time(s)` : ''}`,
    );
    return { digest: upload.digest, size: layer.size };
  });

  const fullLabels = {
    ...labels,
    [LABEL.modelDest]: settings.modelDest,
    [LABEL.modelLayer]: modelLayer.digest,
    [LABEL.modelLayerFormat]: LAYER_FORMAT,
  };
  const image = composeImage(
    baseImage,
    modelLayer,
    fullLabels,
    settings.created,
    `action-build-push: model ${modelDigest.slice(0, 12)} in ${settings.modelDest}`,
  );

  const manifestDigest = await phase('Config and manifest', async () => {
    const configDigest = `sha256:${sha256(image.config)}`;
    const configExists = await client.hasBlob(repository, configDigest);
    if (!configExists) {
      await client.uploadSmallBlob(repository, image.config);
      result.bytesUploaded += image.config.length;
    }
    result.blobs.push({
      what: 'config',
      digest: configDigest,
      size: image.config.length,
      status: configExists ? 'exists' : 'uploaded',
    });
    const manifest = image.manifestFor(configDigest);
    // By digest first: no tag points at the image until the smoke test has passed.
    const digest = await client.putManifest(
      repository,
      `sha256:${sha256(manifest)}`,
      image.mediaType,
      manifest,
    );
    result.bytesUploaded += manifest.length;
    return digest;
  });
  result.digest = manifestDigest;
  result.image = `${settings.registry}/${repository}@${manifestDigest}`;

  if (settings.smoke) {
    const smoke = settings.smoke;
    const docker = deps.docker;
    result.smoke = await phase('Smoke test', async () => {
      const login = await client.dockerLogin();
      await docker.login(settings.registry, login.username, login.password);
      try {
        await docker.run(['pull', '--quiet', result.image]);
      } finally {
        await docker.logout(settings.registry);
      }
      try {
        return await smokeTest(docker, result.image, smoke, logger);
      } finally {
        await docker.run(['image', 'rm', result.image], { check: false });
      }
    });
    if (!result.smoke.passed) {
      throw new Error(
        `Smoke test failed: ${result.smoke.reason}. No tag was pushed (the untagged manifest ` +
          `${manifestDigest} is left for the registry's garbage collection).`,
      );
    }
  }
  if (!settings.push) return;

  await phase('Tags', async () => {
    const manifest = image.manifestFor(result.blobs.find((blob) => blob.what === 'config')!.digest);
    for (const tag of tags) {
      await client.putManifest(repository, tag, image.mediaType, manifest);
      result.bytesUploaded += manifest.length;
      logger.info(`${settings.registry}/${repository}:${tag} → ${manifestDigest}`);
    }
    result.pushed = true;
  });
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
