import type { KubeObject } from '../manifests';
import { ANNOTATION_PREFIX } from '../render';

/**
 * The names, labels and annotations that say which object is which version, as
 * Azure/k8s-deploy writes them, so a later run (promote or reject, in another job) finds them
 * without state files, and objects made by either action are recognised by the other.
 */

/** Canary: `<name>-canary` (the new pod template) and `<name>-baseline` (the stable one). */
export const CANARY_VERSION_LABEL = 'workflow/version';
export type CanaryRole = 'canary' | 'baseline';

/** Blue-green: `<name>-green` (the new version); Services select `None` (stable) or `green`. */
export const COLOR_LABEL = 'k8s.deploy.color';
export const GREEN = 'green';
export const STABLE_COLOR = 'None';

/** Which strategy made an object, for people reading it with kubectl. */
const STRATEGY_ANNOTATION = `${ANNOTATION_PREFIX}/strategy`;
/** The stable workload a canary, baseline or green object stands beside. */
const STABLE_ANNOTATION = `${ANNOTATION_PREFIX}/stable-workload`;

export const variantName = (name: string, role: CanaryRole | typeof GREEN) => `${name}-${role}`;

// Deployments are read loosely here; their shape is checked by the schema before this runs.
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Any = Record<string, any>;

/** Annotations and fields the API server or a controller writes, not to be copied to a new object. */
const SERVER_ANNOTATIONS = /^(deployment\.kubernetes\.io\/|kubectl\.kubernetes\.io\/last-applied)/;

/**
 * A copy of a Deployment named `<name>-<role>` whose selector and pod labels carry
 * `label: role`, so it owns only its own pods while the Service (which does not select on
 * the label) keeps sending traffic to all of them. `replicas` sets its size.
 */
export function variantOf(
  deployment: KubeObject,
  role: CanaryRole | typeof GREEN,
  replicas: number | undefined,
  strategy: 'canary' | 'blue-green',
): KubeObject {
  const label = strategy === 'canary' ? CANARY_VERSION_LABEL : COLOR_LABEL;
  const source = deployment as Any;
  const spec = structuredClone(source.spec ?? {}) as Any;
  spec.selector = {
    ...spec.selector,
    matchLabels: { ...spec.selector?.matchLabels, [label]: role },
  };
  spec.template = withPodLabel(spec.template, label, role);
  if (replicas !== undefined) spec.replicas = replicas;
  const annotations = Object.fromEntries(
    Object.entries((source.metadata.annotations ?? {}) as Record<string, string>).filter(
      ([key]) => !SERVER_ANNOTATIONS.test(key),
    ),
  );
  return {
    apiVersion: deployment.apiVersion,
    kind: deployment.kind,
    metadata: {
      name: variantName(deployment.metadata.name!, role),
      namespace: deployment.metadata.namespace,
      labels: { ...(source.metadata.labels ?? {}), [label]: role },
      annotations: {
        ...annotations,
        // k8s-deploy also marks canary objects with an annotation of the same key.
        ...(strategy === 'canary' ? { [CANARY_VERSION_LABEL]: role } : {}),
        [STRATEGY_ANNOTATION]: strategy,
        [STABLE_ANNOTATION]: deployment.metadata.name!,
      },
    },
    spec,
  };
}

/**
 * A live Deployment as a manifest again: only what its author set (and the server
 * defaulted) in metadata and spec, without status, server annotations or identity fields.
 */
export function asManifest(live: KubeObject): KubeObject {
  const source = live as Any;
  const annotations = Object.fromEntries(
    Object.entries((source.metadata.annotations ?? {}) as Record<string, string>).filter(
      ([key]) => !SERVER_ANNOTATIONS.test(key),
    ),
  );
  return {
    apiVersion: live.apiVersion,
    kind: live.kind,
    metadata: {
      name: live.metadata.name,
      namespace: live.metadata.namespace,
      ...(source.metadata.labels ? { labels: { ...source.metadata.labels } } : {}),
      ...(Object.keys(annotations).length ? { annotations } : {}),
    },
    spec: structuredClone(source.spec),
  };
}

/** A pod template with one more label. */
export function withPodLabel(template: Any | undefined, label: string, value: string): Any {
  const copy = structuredClone(template ?? {}) as Any;
  copy.metadata = { ...copy.metadata, labels: { ...copy.metadata?.labels, [label]: value } };
  return copy;
}

/** The images of a Deployment's pod template, init containers first. */
export function templateImages(deployment: KubeObject | undefined): string[] {
  const spec = ((deployment as Any | undefined)?.spec?.template?.spec ?? {}) as Any;
  return [...(spec.initContainers ?? []), ...(spec.containers ?? [])].map(
    (container: Any) => container.image as string,
  );
}

/** A label selector (`a=b,c=d`) from a Deployment's matchLabels plus `extra`. */
export function podSelector(deployment: KubeObject, extra: Record<string, string> = {}): string {
  const labels = {
    ...(((deployment as Any).spec?.selector?.matchLabels ?? {}) as Record<string, string>),
    ...extra,
  };
  return Object.entries(labels)
    .map(([key, value]) => `${key}=${value}`)
    .join(',');
}

/** True when every key of `selector` has the same value in `labels` (a Service selecting pods). */
export function selects(
  selector: Record<string, string> | undefined,
  labels: Record<string, string> | undefined,
): boolean {
  if (!selector || Object.keys(selector).length === 0) return false;
  return Object.entries(selector).every(([key, value]) => labels?.[key] === value);
}

/**
 * Canary replicas such that about `percentage` % of the Service's pods are canary pods, with
 * as many baseline pods beside them: c / (stable + 2c) ≈ p, at least one.
 */
export function canaryReplicasFor(percentage: number, stableReplicas: number): number {
  const share = percentage / 100;
  const exact = (share * Math.max(1, stableReplicas)) / (1 - 2 * share);
  return Math.min(100, Math.max(1, Math.round(exact)));
}
