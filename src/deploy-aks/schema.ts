import * as admissionV1 from 'kubernetes-models/admissionregistration.k8s.io/v1';
import * as apiextensionsV1 from 'kubernetes-models/apiextensions.k8s.io/v1';
import * as appsV1 from 'kubernetes-models/apps/v1';
import * as autoscalingV1 from 'kubernetes-models/autoscaling/v1';
import * as autoscalingV2 from 'kubernetes-models/autoscaling/v2';
import * as batchV1 from 'kubernetes-models/batch/v1';
import * as coordinationV1 from 'kubernetes-models/coordination.k8s.io/v1';
import * as discoveryV1 from 'kubernetes-models/discovery.k8s.io/v1';
import * as networkingV1 from 'kubernetes-models/networking.k8s.io/v1';
import * as nodeV1 from 'kubernetes-models/node.k8s.io/v1';
import * as policyV1 from 'kubernetes-models/policy/v1';
import * as rbacV1 from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import * as schedulingV1 from 'kubernetes-models/scheduling.k8s.io/v1';
import * as storageV1 from 'kubernetes-models/storage.k8s.io/v1';
import * as coreV1 from 'kubernetes-models/v1';
import type { KubeObject } from './manifests';

/**
 * The upstream Kubernetes OpenAPI schemas, as packaged by kubernetes-models, for the stable
 * built-in API groups. Each module exports one class per kind whose validate() checks an
 * object against its JSON schema.
 */
const GROUP_VERSIONS: Record<string, Record<string, unknown>> = {
  v1: coreV1,
  'apps/v1': appsV1,
  'batch/v1': batchV1,
  'autoscaling/v1': autoscalingV1,
  'autoscaling/v2': autoscalingV2,
  'networking.k8s.io/v1': networkingV1,
  'policy/v1': policyV1,
  'rbac.authorization.k8s.io/v1': rbacV1,
  'storage.k8s.io/v1': storageV1,
  'scheduling.k8s.io/v1': schedulingV1,
  'coordination.k8s.io/v1': coordinationV1,
  'discovery.k8s.io/v1': discoveryV1,
  'node.k8s.io/v1': nodeV1,
  'apiextensions.k8s.io/v1': apiextensionsV1,
  'admissionregistration.k8s.io/v1': admissionV1,
};

interface SchemaError {
  instancePath?: string;
  message?: string;
  params?: Record<string, unknown>;
}

export type SchemaCheck =
  { kind: 'valid' } | { kind: 'unknown'; reason: string } | { kind: 'invalid'; errors: string[] };

/** Checks one object against the schema of its apiVersion and kind. */
export function checkSchema(object: KubeObject): SchemaCheck {
  const module = GROUP_VERSIONS[object.apiVersion];
  if (!module) {
    return { kind: 'unknown', reason: `no bundled schema for apiVersion ${object.apiVersion}` };
  }
  const model = module[object.kind] as (new (data: unknown) => { validate(): void }) | undefined;
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
  return apiVersion in GROUP_VERSIONS;
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
