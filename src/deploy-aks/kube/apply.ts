import { stringify } from 'yaml';
import type { Logger } from '../../common/logger';
import { hasPodTemplate, isClusterScoped } from '../kinds';
import { describeSource, manifestError, type KubeObject, type Source } from '../manifests';
import type { RenderedObject } from '../render';
import { KubeClient, resourceName, type ResourceInfo } from './client';
import { redactSecret } from '../secrets';
import { lineDiff } from './diff';
import { KubeApiError } from './errors';

export const FIELD_MANAGER = 'deploy-aks';

export type ApplyOutcome = 'created' | 'configured' | 'unchanged';

export interface AppliedResource {
  info: ResourceInfo;
  kind: string;
  name: string;
  namespace?: string;
  outcome: ApplyOutcome;
  /** The object as the server stored it (or would, on a dry run). */
  live: KubeObject;
  /** The object before this run; undefined when it was created. */
  before?: KubeObject;
  /** Unified diff of the object before and after, for dry runs. */
  diff?: string;
}

export interface ApplyOptions {
  dryRun: boolean;
  forceConflicts: boolean;
}

/**
 * Server-side applies every object in order with one field manager. Each object's live state
 * is read first, so the outcome (created, configured, unchanged) is known, and so a rollback
 * can put back the pod template that ran before.
 */
export async function applyAll(
  client: KubeClient,
  objects: RenderedObject[],
  options: ApplyOptions,
  logger: Logger,
): Promise<AppliedResource[]> {
  const applied: AppliedResource[] = [];
  for (const { object, source } of objects) {
    const info = await resolveKind(client, object, applied, options.dryRun);
    if (!info) {
      throw manifestError(
        source,
        `the cluster has no kind ${object.kind} in ${object.apiVersion}. Check the ` +
          `apiVersion, or apply the CustomResourceDefinition that defines it first.`,
      );
    }
    if (!info.namespaced) delete object.metadata.namespace;
    const namespace = info.namespaced ? object.metadata.namespace : undefined;
    const name = object.metadata.name!;
    // A namespace this dry run would create does not exist, so nothing in it can be checked.
    const inNewNamespace =
      options.dryRun &&
      namespace !== undefined &&
      applied.some(
        (r) => r.kind === 'Namespace' && r.name === namespace && r.outcome === 'created',
      );
    const before = inNewNamespace ? undefined : await client.get(info, namespace, name);
    let live: KubeObject;
    try {
      live = inNewNamespace
        ? object
        : await client.apply(info, object, {
            fieldManager: FIELD_MANAGER,
            force: options.forceConflicts,
            dryRun: options.dryRun,
          });
    } catch (error) {
      throw explainApplyError(error, object, source);
    }
    const outcome: ApplyOutcome = !before
      ? 'created'
      : before.metadata.resourceVersion === live.metadata.resourceVersion ||
          (options.dryRun && sameContent(before, live))
        ? 'unchanged'
        : 'configured';
    const resource: AppliedResource = {
      info,
      kind: object.kind,
      name,
      namespace,
      outcome,
      live,
      before,
    };
    if (options.dryRun) resource.diff = lineDiff(showable(before), showable(live), 3);
    applied.push(resource);
    logger.info(
      `${resourceName(info)}/${name}${namespace ? ` (${namespace})` : ''} ${outcome}${options.dryRun ? ' (dry run)' : ''}`,
    );
  }
  return applied;
}

/** Finds the kind; a CRD applied moments ago may need a fresh discovery before its kinds show. */
async function resolveKind(
  client: KubeClient,
  object: KubeObject,
  applied: AppliedResource[],
  dryRun: boolean,
): Promise<ResourceInfo | undefined> {
  const info = await client.resource(object.apiVersion, object.kind);
  if (info) return info;
  const group = object.apiVersion.split('/')[0];
  const definedHere = applied.some(
    (resource) =>
      resource.kind === 'CustomResourceDefinition' && resource.name.endsWith(`.${group}`),
  );
  if (!definedHere) return undefined;
  if (dryRun) {
    // A dry-run CRD was never created, so its kinds cannot be applied, even as a dry run.
    return {
      group,
      version: object.apiVersion.split('/')[1],
      apiVersion: object.apiVersion,
      kind: object.kind,
      plural: '',
      namespaced: !isClusterScoped(object.kind),
    };
  }
  for (let attempt = 0; attempt < 20; attempt++) {
    await new Promise((resolve) => setTimeout(resolve, 250));
    const fresh = await client.resource(object.apiVersion, object.kind, true);
    if (fresh) return fresh;
  }
  return undefined;
}

function explainApplyError(error: unknown, object: KubeObject, source: Source): Error {
  if (!(error instanceof KubeApiError)) return error as Error;
  const what = `${object.kind}/${object.metadata.name}`;
  if (error.status === 409) {
    const causes =
      (error.details?.causes as Array<{ message?: string; field?: string }> | undefined) ?? [];
    const fields = causes.map((cause) => `${cause.field ?? ''} ${cause.message ?? ''}`.trim());
    return manifestError(
      source,
      `applying ${what} conflicts with another field manager: ${fields.join('; ') || error.message}. ` +
        `Another tool (kubectl edit, a controller, an earlier pipeline) owns these fields. Remove ` +
        `them from the manifest, or set force-conflicts: true to take them over.`,
    );
  }
  if (error.status === 422 || error.status === 400) {
    return manifestError(source, `the API server rejected ${what}: ${error.message}`);
  }
  return new Error(`${error.message} (applying ${what} from ${describeSource(source)})`);
}

/** An object without the fields the server churns, for diffs. */
function showable(object: KubeObject | undefined): string {
  if (!object) return '';
  const copy = structuredClone(redactSecret(object));
  const metadata = copy.metadata as Record<string, unknown>;
  for (const field of [
    'managedFields',
    'resourceVersion',
    'uid',
    'creationTimestamp',
    'generation',
    'selfLink',
  ]) {
    delete metadata[field];
  }
  delete copy.status;
  return stringify(copy, { sortMapEntries: true });
}

function sameContent(a: KubeObject, b: KubeObject): boolean {
  return showable(a) === showable(b);
}

/** The pod template of a workload, to restore on rollback. */
export function podTemplateOf(object: KubeObject | undefined): unknown {
  if (!object || !hasPodTemplate(object.kind)) return undefined;
  return (object.spec as { template?: unknown } | undefined)?.template;
}
