import { ConfigurationError } from '../common/errors';
import type { Logger } from '../common/logger';
import { isWorkload } from './kinds';
import type { KubeClient } from './kube/client';
import { ANNOTATION_PREFIX, type Provenance, type RenderedObject } from './render';

export const RUN_ID_ANNOTATION = `${ANNOTATION_PREFIX}/run-id`;
export const COMMIT_ANNOTATION = `${ANNOTATION_PREFIX}/commit`;

/** A workload that a later run deployed, with what that run recorded. */
export interface NewerDeploy {
  workload: string;
  runId: number;
  commit?: string;
}

/**
 * Finds workloads that a later workflow run deployed from another commit. GitHub numbers a
 * repository's runs in the order they start, so a run that started after this one built a
 * newer commit (or the same one, which is no conflict); the concurrency group only serialises
 * deploys, it does not stop an older run that finishes last from replacing a newer release.
 */
export async function findNewerDeploys(
  client: KubeClient,
  objects: RenderedObject[],
  provenance: Provenance,
): Promise<NewerDeploy[]> {
  const ours = Number(provenance.runId);
  if (!Number.isSafeInteger(ours)) return [];
  const newer: NewerDeploy[] = [];
  for (const { object } of objects) {
    if (!isWorkload(object.kind)) continue;
    const info = await client.resource(object.apiVersion, object.kind);
    if (!info) continue;
    const live = await client.get(
      info,
      info.namespaced ? object.metadata.namespace : undefined,
      object.metadata.name!,
    );
    const annotations = (live?.metadata.annotations ?? {}) as Record<string, string>;
    const runId = Number(annotations[RUN_ID_ANNOTATION]);
    const commit = annotations[COMMIT_ANNOTATION];
    if (Number.isSafeInteger(runId) && runId > ours && commit !== provenance.commit) {
      newer.push({ workload: `${object.kind}/${object.metadata.name}`, runId, commit });
    }
  }
  return newer;
}

/** Fails (or, when allowed, warns) before anything is applied. */
export async function refuseOlderRelease(
  client: KubeClient,
  objects: RenderedObject[],
  provenance: Provenance,
  allowOlder: boolean,
  logger: Logger,
): Promise<void> {
  const newer = await findNewerDeploys(client, objects, provenance);
  if (newer.length === 0) return;
  const described = newer
    .map(
      (item) =>
        `${item.workload} (run ${item.runId}${item.commit ? `, commit ${item.commit.slice(0, 12)}` : ''})`,
    )
    .join(', ');
  const ours = `run ${provenance.runId}${provenance.commit ? `, commit ${provenance.commit.slice(0, 12)}` : ''}`;
  if (!allowOlder) {
    throw new ConfigurationError(
      `A later workflow run already deployed ${described}; this is ${ours}. Refusing to replace ` +
        `a newer release with an older one: nothing was applied. To roll back on purpose, run ` +
        `again with allow-older-release: true.`,
    );
  }
  logger.warning(
    `Replacing a newer release with this older one (allow-older-release): ${described}; this is ${ours}.`,
  );
}
