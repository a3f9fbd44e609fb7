import { isDeepStrictEqual } from 'node:util';
import type { Logger } from '../../common/logger';
import { hasPodTemplate, type WorkloadKind } from '../kinds';
import { FIELD_MANAGER, podTemplateOf, type AppliedResource } from './apply';
import type { KubeClient } from './client';
import type { WorkloadRef } from './rollout';

/**
 * Puts each workload this run changed back to the pod template it had before the run, with a
 * JSON patch that replaces the whole template, so fields the new template added go too. Workloads this run created have nothing to go back to and are left in place.
 */
export async function restorePodTemplates(
  client: KubeClient,
  applied: AppliedResource[],
  logger: Logger,
): Promise<{ restored: WorkloadRef[]; leftInPlace: string[] }> {
  const restored: WorkloadRef[] = [];
  const leftInPlace: string[] = [];
  for (const resource of applied) {
    if (!hasPodTemplate(resource.kind)) continue;
    const previous = podTemplateOf(resource.before);
    if (!previous) {
      if (resource.outcome === 'created') leftInPlace.push(`${resource.kind}/${resource.name}`);
      continue;
    }
    if (isDeepStrictEqual(previous, podTemplateOf(resource.live))) continue;
    await client.jsonPatch(
      resource.info,
      resource.namespace,
      resource.name,
      [{ op: 'replace', path: '/spec/template', value: previous }],
      FIELD_MANAGER,
    );
    logger.info(
      `${resource.kind}/${resource.name}: pod template restored to the one before this run`,
    );
    restored.push({
      info: resource.info,
      kind: resource.kind as WorkloadKind,
      name: resource.name,
      namespace: resource.namespace ?? 'default',
    });
  }
  return { restored, leftInPlace };
}
