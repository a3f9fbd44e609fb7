import { formatBytes } from '../common/format';
import type { ModeDeps } from './build-push';
import type { BuildPushSettings } from './inputs';
import { imageLabels } from './labels';
import type { ModelSet } from './model-files';
import type { ImageConfig, ImageManifest } from './oci/image';
import type { BlobReport, BuildPushResult } from './result';
import { smokeTest } from './smoke';
import { stageModel } from './stage';

/** `docker push` ends each tag with `<tag>: digest: sha256:<hex> size: <bytes>`. */
const PUSHED_DIGEST = /: digest: (sha256:[a-f0-9]{64}) size: (\d+)/;

/**
 * The build command: `docker buildx build --load` when buildx is installed (it then builds with
 * the builder the user chose: BUILDX_BUILDER, or the current one, e.g. from
 * docker/setup-buildx-action), `docker build` otherwise.
 */
export function buildCommand(
  settings: Pick<BuildPushSettings, 'dockerfile' | 'buildArgs' | 'context'>,
  references: string[],
  labels: Record<string, string>,
  buildx: boolean,
): string[] {
  const args = buildx ? ['buildx', 'build', '--load'] : ['build'];
  args.push('--file', settings.dockerfile);
  for (const reference of references) args.push('--tag', reference);
  for (const [key, value] of Object.entries(labels)) args.push('--label', `${key}=${value}`);
  for (const arg of settings.buildArgs) args.push('--build-arg', arg);
  args.push(settings.context);
  return args;
}

/**
 * Dockerfile mode: sign in to the registry first (so `FROM` an image there works), stage the
 * model into the context (each file checked against its sha256), build, smoke-test, then
 * `docker push` each tag; the digest is the one docker reports for the push.
 */
export async function dockerfileMode(
  settings: BuildPushSettings,
  model: ModelSet | undefined,
  tags: string[],
  deps: ModeDeps,
  phase: <T>(name: string, fn: () => Promise<T>) => Promise<T>,
  result: BuildPushResult,
): Promise<void> {
  const { docker, logger } = deps;
  const references = tags.map((tag) => `${settings.registry}/${settings.repository}:${tag}`);
  result.image = references[0];
  const labels = imageLabels(settings, model?.digest, model?.files);

  if (settings.skipExisting && settings.push) {
    logger.info(
      'skip-existing: an image docker built cannot be checked against anything this run computes ' +
        '(registry tags and labels are writable by anyone who may push), so dockerfile mode always ' +
        'builds; model-layer mode skips an image it can verify',
    );
  }

  await phase('Sign in', async () => {
    if (!settings.push && !deps.canSignIn) {
      logger.info(
        `not signed in to ${settings.registry}: nothing is pushed and no credentials are at hand ` +
          '(no id-token permission, no username); a FROM image there could not be pulled',
      );
      return;
    }
    await deps.signIn();
    logger.info(`signed in to ${settings.registry} for this step (private docker config)`);
  });

  await phase('Build', async () => {
    const staging =
      model && settings.modelPath
        ? await stageModel(settings.context, settings.modelContextDir, model.files)
        : undefined;
    if (staging) {
      logger.info(
        `model staged in ${staging.directory} and checked (${staging.linked} hard link(s), ${staging.copied} copie(s))`,
      );
    }
    try {
      const buildx = await docker.hasBuildx();
      logger.info(
        buildx
          ? `buildx found: building with the ${docker.env.BUILDX_BUILDER ? `'${docker.env.BUILDX_BUILDER}'` : 'current'} builder`
          : 'no buildx: building with docker build',
      );
      await docker.run(buildCommand(settings, references, labels, buildx), { stream: true });
    } finally {
      await staging?.remove();
    }
    result.imageId = (
      await docker.run(['image', 'inspect', '--format', '{{.Id}}', references[0]])
    ).stdout.trim();
  });

  if (settings.smoke) {
    const smoke = settings.smoke;
    result.smoke = await phase('Smoke test', () => smokeTest(docker, references[0], smoke, logger));
    if (!result.smoke.passed) {
      throw new Error(`Smoke test failed: ${result.smoke.reason}. Nothing was pushed.`);
    }
  }
  if (!settings.push) return;

  const client = deps.client();
  await phase('Push', async () => {
    const pushed = new Set<string>();
    let digest: string | undefined;
    for (const reference of references) {
      const output = await docker.run(['push', reference], { stream: true });
      for (const match of output.stdout.matchAll(/^([0-9a-f]{12}): Pushed$/gm))
        pushed.add(match[1]);
      const reported = PUSHED_DIGEST.exec(output.stdout)?.[1];
      if (!reported) throw new Error(`docker push ${reference} reported no digest`);
      if (digest && reported !== digest) {
        throw new Error(
          `docker push gave ${references[0]} the digest ${digest} but ${reference} ${reported}`,
        );
      }
      digest = reported;
    }
    // Read back by the digest docker reported, never by tag: another push may move the tag.
    const fetched = await client.getManifest(settings.repository, digest!);
    if (!fetched)
      throw new Error(`${settings.repository}@${digest} is not in the registry after docker push`);
    result.digest = digest;
    result.image = `${settings.registry}/${settings.repository}@${digest}`;
    result.manifest = { mediaType: fetched.mediaType, size: fetched.body.length };
    result.pushed = true;
    const manifest = JSON.parse(fetched.body.toString('utf8')) as ImageManifest;
    result.imageId = manifest.config.digest;
    const config = JSON.parse(
      (await client.getBlob(settings.repository, manifest.config.digest)).toString('utf8'),
    ) as ImageConfig;
    // docker push names each layer by the first 12 hex digits of its diff_id.
    manifest.layers.forEach((layer, index) => {
      const diffId = config.rootfs.diff_ids[index]?.replace(/^sha256:/, '').slice(0, 12);
      const status: BlobReport['status'] = diffId && pushed.has(diffId) ? 'pushed' : 'exists';
      result.blobs.push({
        what: `layer ${index + 1}`,
        digest: layer.digest,
        size: layer.size,
        status,
      });
      if (status === 'pushed') result.bytesUploaded += layer.size;
    });
    result.bytesUploaded += manifest.config.size + fetched.body.length;
    logger.info(`pushed ${result.image}; ${formatBytes(result.bytesUploaded)} uploaded`);
  });
}
