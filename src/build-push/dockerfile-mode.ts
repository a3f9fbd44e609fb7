import { formatBytes } from '../common/format';
import type { Logger } from '../common/logger';
import type { DockerCli } from './docker';
import type { BuildPushSettings } from './inputs';
import type { ModelFile } from './model-files';
import type { RegistryClient } from './oci/client';
import type { ImageConfig, ImageManifest } from './oci/image';
import type { BlobReport, BuildPushResult } from './result';
import { smokeTest } from './smoke';
import { stageModel } from './stage';

/**
 * Dockerfile mode: stage the model into the context, `docker buildx build --load` (or `docker
 * build`), smoke-test, then `docker push` each tag with a login for this run only. The digest
 * is read back from the registry.
 */
export async function dockerfileMode(
  settings: BuildPushSettings,
  files: ModelFile[] | undefined,
  labels: Record<string, string>,
  tags: string[],
  deps: { docker: DockerCli; client: () => RegistryClient; logger: Logger },
  phase: <T>(name: string, fn: () => Promise<T>) => Promise<T>,
  result: BuildPushResult,
): Promise<void> {
  const { docker, logger } = deps;
  const references = tags.map((tag) => `${settings.registry}/${settings.repository}:${tag}`);
  result.image = references[0];

  await phase('Build', async () => {
    const staging =
      files && settings.modelPath
        ? await stageModel(settings.context, settings.modelContextDir, files)
        : undefined;
    if (staging) {
      logger.info(
        `model staged in ${staging.directory} (${staging.linked} hard link(s), ${staging.copied} copie(s))`,
      );
    }
    try {
      const buildx = await docker.hasBuildx();
      const args = buildx ? ['buildx', 'build', '--load'] : ['build'];
      args.push('--file', settings.dockerfile);
      for (const reference of references) args.push('--tag', reference);
      for (const [key, value] of Object.entries(labels)) args.push('--label', `${key}=${value}`);
      for (const arg of settings.buildArgs) args.push('--build-arg', arg);
      args.push(settings.context);
      logger.info(
        `docker ${args.slice(0, buildx ? 3 : 1).join(' ')} (${buildx ? 'buildx' : 'no buildx: classic builder'})`,
      );
      await docker.run(args, { stream: true });
    } finally {
      await staging?.remove();
    }
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
    const login = await client.dockerLogin();
    await docker.login(settings.registry, login.username, login.password);
    const pushed = new Set<string>();
    try {
      for (const reference of references) {
        const output = await docker.run(['push', reference], { stream: true });
        for (const match of output.stdout.matchAll(/^([0-9a-f]{12}): Pushed$/gm))
          pushed.add(match[1]);
      }
    } finally {
      await docker.logout(settings.registry);
    }
    const fetched = await client.getManifest(settings.repository, tags[0]);
    if (!fetched) throw new Error(`${references[0]} is not in the registry after docker push`);
    result.digest = fetched.digest;
    result.image = `${settings.registry}/${settings.repository}@${fetched.digest}`;
    result.pushed = true;
    const manifest = JSON.parse(fetched.body.toString('utf8')) as ImageManifest;
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
