import type { KubeObject } from './manifests';

/**
 * The upstream Kubernetes OpenAPI schemas, as packaged by kubernetes-models, for the stable
 * built-in API groups. Each module exports one class per kind whose validate() checks an
 * object against its JSON schema. Each module is loaded the first time an object of its group is
 * checked, by a `require` inside a function (an `import` would load all fifteen at start-up,
 * about 80 ms of every run, input errors included), and a deploy names only a few groups.
 */
/* eslint-disable @typescript-eslint/no-require-imports */
const GROUP_VERSIONS: Record<string, () => Record<string, unknown>> = {
  v1: () => require('kubernetes-models/v1'),
  'apps/v1': () => require('kubernetes-models/apps/v1'),
  'batch/v1': () => require('kubernetes-models/batch/v1'),
  'autoscaling/v1': () => require('kubernetes-models/autoscaling/v1'),
  'autoscaling/v2': () => require('kubernetes-models/autoscaling/v2'),
  'networking.k8s.io/v1': () => require('kubernetes-models/networking.k8s.io/v1'),
  'policy/v1': () => require('kubernetes-models/policy/v1'),
  'rbac.authorization.k8s.io/v1': () => require('kubernetes-models/rbac.authorization.k8s.io/v1'),
  'storage.k8s.io/v1': () => require('kubernetes-models/storage.k8s.io/v1'),
  'scheduling.k8s.io/v1': () => require('kubernetes-models/scheduling.k8s.io/v1'),
  'coordination.k8s.io/v1': () => require('kubernetes-models/coordination.k8s.io/v1'),
  'discovery.k8s.io/v1': () => require('kubernetes-models/discovery.k8s.io/v1'),
  'node.k8s.io/v1': () => require('kubernetes-models/node.k8s.io/v1'),
  'apiextensions.k8s.io/v1': () => require('kubernetes-models/apiextensions.k8s.io/v1'),
  'admissionregistration.k8s.io/v1': () =>
    require('kubernetes-models/admissionregistration.k8s.io/v1'),
};
/* eslint-enable @typescript-eslint/no-require-imports */

interface SchemaError {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

export type SchemaCheck =
  { kind: 'valid' } | { kind: 'unknown'; reason: string } | { kind: 'invalid'; errors: string[] };

/** Checks one object against the schema of its apiVersion and kind. */
export function checkSchema(object: KubeObject): SchemaCheck {
  const module = Object.hasOwn(GROUP_VERSIONS, object.apiVersion)
    ? GROUP_VERSIONS[object.apiVersion]()
    : undefined;
  if (!module) {
    return { kind: 'unknown', reason: `no bundled schema for apiVersion ${object.apiVersion}` };
  }
  const model = (Object.hasOwn(module, object.kind) ? module[object.kind] : undefined) as
    (new (data: unknown) => { validate(): void }) | undefined;
  if (typeof model !== 'function' || object.kind.endsWith('List')) {
    return {
      kind: 'unknown',
      reason: `${object.apiVersion} has no kind ${object.kind}`,
    };
  }
  try {
    new model(object).validate();
    return { kind: 'valid' };
  } catch (error) {
    const details = (error as { errors?: SchemaError[] }).errors;
    if (!Array.isArray(details)) throw error;
    return { kind: 'invalid', errors: details.map(describeError) };
  }
}

/** Is this group a built-in one whose kinds must all be known? */
export function isBuiltInGroupVersion(apiVersion: string): boolean {
  return Object.hasOwn(GROUP_VERSIONS, apiVersion);
}

function describeError(error: SchemaError): string {
  const at = (error.instancePath ?? '').replace(/^\//, '').replace(/\//g, '.') || '(object)';
  const extra =
    error.params && 'allowedValues' in error.params
      ? ` (${(error.params.allowedValues as unknown[]).join(', ')})`
      : error.params && 'additionalProperty' in error.params
        ? ` '${String(error.params.additionalProperty)}'`
        : '';
  return `${at} ${error.message ?? 'is invalid'}${extra}`;
}
