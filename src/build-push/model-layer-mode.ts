import { createHash } from 'node:crypto';
import { ConfigurationError, quote } from '../common/errors';
import { formatBytes, formatDuration, formatRate } from '../common/format';
import { withHashWorkers } from '../common/hash-workers';
import { formatReference } from '../common/image-reference';
import type { ModeDeps } from './build-push';
import { differenceFrom, findModelLayerClaim, logExisting, readExisting } from './existing';
import type { BuildPushSettings } from './inputs';
import { imageLabels, LABEL, LAYER_FORMAT } from './labels';
import type { ModelSet } from './model-files';
import { composeImage, readBaseImage, type BaseImage, type ImageManifest } from './oci/image';
import { TarLayer } from './oci/tar-layer';
import type { BuildPushResult } from './result';
import { smokeTest } from './smoke';

/**
 * Model-layer mode, no Docker daemon: the base image's manifest and config come from the
 * registry, the model becomes one uncompressed reproducible tar layer (each file checked against
 * its sha256 as it is read), each blob is uploaded only when the repository lacks it (mounted
 * from the base's repository when possible), and the manifest goes last: first by digest (so
 * the smoke test can pull it), then under each tag.
 *
 * Nothing the registry says about an image is taken on trust but its digests: an existing tag is
 * skipped only when it is exactly the image this run would push, and a model layer is reused
 * only when its digest is the one computed here from the verified files.
 */
export async function modelLayerMode(
  settings: BuildPushSettings,
  model: ModelSet,
  tags: string[],
  deps: ModeDeps,
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

  const layer = new TarLayer(model.files, settings.modelDest);
  /** The model layer's digest, once computed here by reading (and so checking) every file. */
  let localDigest: string | undefined;
  const computeDigest = async (why: string) => {
    logger.info(`hashing the model layer (${formatBytes(layer.size)}) ${why}`);
    const started = Date.now();
    // The file checks and the layer digest on two worker threads, side by side.
    localDigest = await withHashWorkers((hashes) => layer.digest(hashes), {
      workers: 2,
      onFallback: (error) =>
        logger.warning(`${error.message}; hashing the model layer on the main thread instead`),
    });
    logger.info(`model layer ${localDigest}, computed in ${formatDuration(Date.now() - started)}`);
    return localDigest;
  };
  const compose = (layerDigest: string, created: string) =>
    composeImageFor(settings, model, baseImage, { digest: layerDigest, size: layer.size }, created);

  if (settings.skipExisting && settings.push) {
    const reference = `${settings.registry}/${repository}:${tags[0]}`;
    const same = await phase('Existing image', async () => {
      const existing = await readExisting(client, repository, tags[0]);
      if (!existing) {
        logExisting(logger, reference, undefined, undefined);
        return undefined;
      }
      const digest = await computeDigest(`to compare with ${reference}`);
      // The creation time is the one part of the image a re-run cannot reproduce: take theirs.
      const expected = compose(digest, existing.config.created ?? '');
      const difference = differenceFrom(existing, {
        digest: expected.digest,
        manifest: expected.manifest,
        modelLayer: digest,
      });
      logExisting(logger, reference, existing, difference);
      return difference ? undefined : existing;
    });
    if (same) {
      result.skipped = true;
      result.digest = same.digest;
      result.imageId = same.manifest.config.digest;
      result.manifest = { mediaType: same.mediaType, size: same.size };
      result.image = `${settings.registry}/${repository}@${same.digest}`;
      logger.info(`skip-existing: nothing to build or push, ${result.image} is current`);
      return;
    }
  }

  await phase('Base layers', async () => {
    for (const [index, baseLayer] of [...baseImage.manifest.layers].entries()) {
      const what = `base layer ${index + 1}`;
      if (await client.hasBlob(repository, baseLayer.digest)) {
        result.blobs.push({
          what,
          digest: baseLayer.digest,
          size: baseLayer.size,
          status: 'exists',
        });
      } else if (
        base.repository !== repository &&
        (await client.mountBlob(repository, baseLayer.digest, base.repository))
      ) {
        result.blobs.push({
          what,
          digest: baseLayer.digest,
          size: baseLayer.size,
          status: 'mounted',
        });
      } else {
        throw new Error(
          `${what} ${baseLayer.digest} is not in ${repository} and the registry would not mount it from ${base.repository}`,
        );
      }
      logger.info(`${what} ${baseLayer.digest.slice(7, 19)}: ${result.blobs.at(-1)!.status}`);
    }
  });

  const modelLayer = await phase('Model layer', async () => {
    if (!localDigest) {
      const claim = await findModelLayerClaim(
        client,
        repository,
        model.digest,
        settings.modelDest,
        tags,
      );
      if (claim) {
        await computeDigest(`to check the layer :${claim.from} labels as this model's`);
        if (localDigest !== claim.digest) {
          logger.info(
            `:${claim.from} labels ${claim.digest} as this model's layer, but the layer computed ` +
              'here differs; that layer is not reused',
          );
        }
      }
    }
    if (localDigest && (await client.hasBlob(repository, localDigest))) {
      result.blobs.push({
        what: 'model layer',
        digest: localDigest,
        size: layer.size,
        status: 'reused',
      });
      logger.info(
        `model layer ${localDigest} (computed here) is already in ${repository}; 0 model bytes to upload`,
      );
      return { digest: localDigest, size: layer.size };
    }
    logger.info(
      `uploading the model as an uncompressed tar layer: ${model.files.length} file(s), ${formatBytes(layer.size)}, ` +
        `chunks of ${formatBytes(client.chunkSize)}`,
    );
    const started = Date.now();
    let upload;
    try {
      upload = await client.uploadBlob(
        repository,
        { size: layer.size, read: (start, end) => layer.read(start, end, undefined, true) },
        localDigest,
      );
    } catch (error) {
      // A file that failed its sha256 check ends the upload however the transport reports it.
      throw layer.failure ?? error;
    }
    if (!layer.verified) {
      throw new Error('the model layer was uploaded without every file being checked; not used');
    }
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

  const image = compose(modelLayer.digest, settings.created);
  await phase('Config and manifest', async () => {
    const configExists = await client.hasBlob(repository, image.configDigest);
    if (!configExists) {
      await client.uploadSmallBlob(repository, image.config);
      result.bytesUploaded += image.config.length;
    }
    result.blobs.push({
      what: 'config',
      digest: image.configDigest,
      size: image.config.length,
      status: configExists ? 'exists' : 'uploaded',
    });
    // By digest first: no tag points at the image until the smoke test has passed.
    await client.putManifest(repository, image.digest, image.mediaType, image.manifestBytes);
    result.bytesUploaded += image.manifestBytes.length;
  });
  result.digest = image.digest;
  result.imageId = image.configDigest;
  result.manifest = { mediaType: image.mediaType, size: image.manifestBytes.length };
  result.image = `${settings.registry}/${repository}@${image.digest}`;

  if (settings.smoke) {
    const smoke = settings.smoke;
    const docker = deps.docker;
    result.smoke = await phase('Smoke test', async () => {
      await deps.signIn();
      await docker.run(['pull', '--quiet', result.image]);
      try {
        return await smokeTest(docker, result.image, smoke, logger);
      } finally {
        await docker.run(['image', 'rm', result.image], { check: false });
      }
    });
    if (!result.smoke.passed) {
      throw new Error(
        `Smoke test failed: ${result.smoke.reason}. No tag was pushed (the untagged manifest ` +
          `${image.digest} is left for the registry's garbage collection).`,
      );
    }
  }
  if (!settings.push) return;

  await phase('Tags', async () => {
    for (const tag of tags) {
      await client.putManifest(repository, tag, image.mediaType, image.manifestBytes);
      result.bytesUploaded += image.manifestBytes.length;
      logger.info(`${settings.registry}/${repository}:${tag} → ${image.digest}`);
    }
    result.pushed = true;
  });
}

/**
 * The image this run pushes for a model layer and a creation time: the base's layers plus the
 * model layer, the base's config with this run's labels. The same inputs give the same bytes,
 * which is what lets a re-run recognise its own image.
 */
function composeImageFor(
  settings: BuildPushSettings,
  model: ModelSet,
  base: BaseImage,
  modelLayer: { digest: string; size: number },
  created: string,
) {
  const labels = {
    ...imageLabels(settings, model.digest, model.files, created),
    [LABEL.modelDest]: settings.modelDest,
    [LABEL.modelLayer]: modelLayer.digest,
    [LABEL.modelLayerFormat]: LAYER_FORMAT,
  };
  const image = composeImage(
    base,
    modelLayer,
    labels,
    created,
    `action-build-push: model ${model.digest.slice(0, 12)} in ${settings.modelDest}`,
  );
  const configDigest = `sha256:${sha256(image.config)}`;
  const manifestBytes = image.manifestFor(configDigest);
  return {
    config: image.config,
    configDigest,
    mediaType: image.mediaType,
    manifestBytes,
    manifest: JSON.parse(manifestBytes.toString('utf8')) as ImageManifest,
    digest: `sha256:${sha256(manifestBytes)}`,
  };
}

function sha256(data: Buffer): string {
  return createHash('sha256').update(data).digest('hex');
}
