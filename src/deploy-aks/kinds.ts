/** What the action knows about built-in kinds before it asks the API server. */

/** Built-in cluster-scoped kinds; everything else is taken as namespaced until discovery says otherwise. */
const CLUSTER_SCOPED = new Set([
  'Namespace',
  'Node',
  'PersistentVolume',
  'CustomResourceDefinition',
  'ClusterRole',
  'ClusterRoleBinding',
  'StorageClass',
  'CSIDriver',
  'CSINode',
  'VolumeAttachment',
  'PriorityClass',
  'RuntimeClass',
  'IngressClass',
  'APIService',
  'MutatingWebhookConfiguration',
  'ValidatingWebhookConfiguration',
  'ValidatingAdmissionPolicy',
  'ValidatingAdmissionPolicyBinding',
  'FlowSchema',
  'PriorityLevelConfiguration',
  'CertificateSigningRequest',
]);

export function isClusterScoped(kind: string): boolean {
  return CLUSTER_SCOPED.has(kind);
}

/**
 * Apply order: what others depend on first (namespaces, CRDs, identities and config), then
 * services, then workloads, then what points at workloads (ingresses, autoscalers, budgets).
 */
const ORDER: string[][] = [
  ['Namespace'],
  ['CustomResourceDefinition', 'PriorityClass', 'StorageClass', 'IngressClass', 'RuntimeClass'],
  ['ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'Role', 'RoleBinding'],
  ['ResourceQuota', 'LimitRange', 'NetworkPolicy'],
  ['ConfigMap', 'Secret'],
  ['PersistentVolume', 'PersistentVolumeClaim'],
  ['Service'],
  ['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet', 'Pod', 'Job', 'CronJob'],
  ['Ingress', 'HorizontalPodAutoscaler', 'PodDisruptionBudget'],
];

/** Rank of a kind in apply order; custom resources come last, after their definitions. */
export function applyRank(kind: string): number {
  const rank = ORDER.findIndex((kinds) => kinds.includes(kind));
  return rank < 0 ? ORDER.length : rank;
}

/** Kinds whose rollout the action waits for. */
export const WORKLOAD_KINDS = ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'] as const;
export type WorkloadKind = (typeof WORKLOAD_KINDS)[number];

export function isWorkload(kind: string): kind is WorkloadKind {
  return (WORKLOAD_KINDS as readonly string[]).includes(kind);
}

/** Kinds whose pod template a rollback restores. */
export function hasPodTemplate(kind: string): boolean {
  return kind === 'Deployment' || kind === 'StatefulSet' || kind === 'DaemonSet';
}
