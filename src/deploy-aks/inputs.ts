import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { readAzureIdentity, type AzureIdentitySettings } from '../common/credential';
import { ConfigurationError, quote } from '../common/errors';
import { requireSecureEndpoint, type Inputs } from '../common/inputs';
import type { Logger } from '../common/logger';
import type { AksCluster } from './aks';
import { parseImageInputs, type ImageEntry } from './images';
import { parseKeyValues, type Provenance } from './render';

/** Where the cluster's credentials come from. */
export type ClusterSource =
  | { kind: 'aks'; cluster: AksCluster; armEndpoint: string }
  | { kind: 'kubeconfig'; text: string; origin: string; baseDir: string };

/** How much of a kubeconfig's TLS settings to honour. */
export interface ClusterTrust {
  /** Accept a kubeconfig that turns off certificate verification (insecure-skip-tls-verify). */
  allowInsecureTls: boolean;
}

/** Everything action-deploy-aks was asked to do, checked and typed. */
export interface DeploySettings {
  /** AKS through ARM (resource-group + cluster-name), or a kubeconfig. */
  cluster: ClusterSource;
  trust: ClusterTrust;
  /** Azure sign-in by OIDC: ARM, and the AKS server app for Entra-enabled clusters. */
  identity: AzureIdentitySettings;
  /** The namespace input; undefined lets the manifests decide (else default). */
  namespace?: string;
  /** Manifest files, directories or globs, as given. */
  manifests: string[];
  /** Replacement images, one per repository. */
  images: ImageEntry[];
  /** Warn instead of failing when an `images` entry matches no container. */
  allowUnmatchedImages: boolean;
  /** Extra labels for every resource. */
  labels: Record<string, string>;
  /** Extra annotations for every resource. */
  annotations: Record<string, string>;
  /** Commit, run URL and id, and model digest recorded in annotations. */
  provenance: Provenance;
  /** Replace workloads that a later run deployed (a rollback by hand). */
  allowOlderRelease: boolean;
  /** How long to wait for the rollout (and again for a rollback). */
  timeoutMs: number;
  /** How long a pod may show a failing reason (ImagePullBackOff, ...) before the rollout fails. */
  failureGraceMs: number;
  /** Restore the previous pod templates when the rollout fails. */
  rollbackOnFailure: boolean;
  /** Server-side dry run: nothing changes, the summary shows a diff. */
  dryRun: boolean;
  /** Take over fields another field manager owns. */
  forceConflicts: boolean;
  /** Directory that relative manifest paths are resolved against. */
  workspace: string;
  /** Where the rendered bundle is written. */
  bundlePath: string;
}

export function readSettings(
  inputs: Inputs,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): DeploySettings {
  const workspace = env.GITHUB_WORKSPACE || process.cwd();
  const kubeconfig = inputs.optional('kubeconfig');
  if (kubeconfig !== undefined) logger.mask(kubeconfig);
  const identity = readAzureIdentity(inputs, env);
  const resourceGroup = inputs.optional('resource-group');
  const clusterName = inputs.optional('cluster-name');
  const subscriptionId =
    inputs.optional('subscription-id') ?? (env.AZURE_SUBSCRIPTION_ID?.trim() || undefined);
  const admin = inputs.boolean('admin', false);
  const armEndpoint = inputs.optional('arm-endpoint');

  let cluster: ClusterSource;
  if (kubeconfig !== undefined) {
    if (resourceGroup !== undefined || clusterName !== undefined) {
      throw new ConfigurationError(
        "Set either 'kubeconfig' or 'resource-group' with 'cluster-name', not both.",
      );
    }
    cluster = readKubeconfig(kubeconfig, workspace);
  } else {
    if (resourceGroup === undefined || clusterName === undefined) {
      throw new ConfigurationError(
        "Inputs 'resource-group' and 'cluster-name' are required (the AKS cluster), unless " +
          "'kubeconfig' is given.",
      );
    }
    if (!subscriptionId) {
      throw new ConfigurationError(
        "Input 'subscription-id' (or the AZURE_SUBSCRIPTION_ID variable) is required for an AKS cluster.",
      );
    }
    if (!/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i.test(subscriptionId)) {
      throw new ConfigurationError(
        `Invalid subscription-id ${quote(subscriptionId)}. Expected a GUID such as 00000000-0000-0000-0000-000000000000.`,
      );
    }
    if (!/^[-\w._()]{1,90}$/.test(resourceGroup) || resourceGroup.endsWith('.')) {
      throw new ConfigurationError(
        `Invalid resource-group ${quote(resourceGroup)}. Expected 1-90 letters, digits, '-', '_', '.', '(' or ')', not ending in '.'.`,
      );
    }
    if (!/^[a-zA-Z0-9][-_a-zA-Z0-9]{0,62}$/.test(clusterName)) {
      throw new ConfigurationError(
        `Invalid cluster-name ${quote(clusterName)}. Expected 1-63 letters, digits, '-' and '_', starting with a letter or digit.`,
      );
    }
    cluster = {
      kind: 'aks',
      cluster: { subscriptionId, resourceGroup, name: clusterName, admin },
      armEndpoint: parseHttpsUrl('arm-endpoint', armEndpoint ?? identity.cloud.resourceManager),
    };
  }

  const namespace = inputs.optional('namespace');
  if (namespace !== undefined && !/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/.test(namespace)) {
    throw new ConfigurationError(
      `Invalid namespace ${quote(namespace)}. Expected a DNS label: up to 63 lowercase letters, digits and '-'.`,
    );
  }
  const manifests = inputs.lines('manifests');
  if (manifests.length === 0) {
    throw new ConfigurationError(
      "Input 'manifests' is required: files, directories or globs of Kubernetes YAML, one per line, e.g. 'k8s/'.",
    );
  }
  const modelDigest = inputs.optional('model-digest');
  if (modelDigest !== undefined && !/^(sha256:)?[0-9a-f]{64}$/.test(modelDigest)) {
    throw new ConfigurationError(
      `Invalid model-digest ${quote(modelDigest)}. Expected 64 lowercase hex digits (fetch-model's ` +
        `model-digest output), optionally prefixed with sha256:.`,
    );
  }
  const runUrl =
    env.GITHUB_SERVER_URL && env.GITHUB_REPOSITORY && env.GITHUB_RUN_ID
      ? `${env.GITHUB_SERVER_URL}/${env.GITHUB_REPOSITORY}/actions/runs/${env.GITHUB_RUN_ID}` +
        (env.GITHUB_RUN_ATTEMPT ? `/attempts/${env.GITHUB_RUN_ATTEMPT}` : '')
      : undefined;

  return {
    cluster,
    trust: { allowInsecureTls: inputs.boolean('insecure-skip-tls-verify', false) },
    identity,
    namespace,
    manifests,
    images: parseImageInputs(inputs.lines('images')),
    allowUnmatchedImages: inputs.boolean('allow-unmatched-images', false),
    labels: parseKeyValues('labels', inputs.lines('labels')),
    annotations: parseKeyValues('annotations', inputs.lines('annotations')),
    provenance: {
      commit: env.GITHUB_SHA || undefined,
      runUrl,
      runId: /^\d+$/.test(env.GITHUB_RUN_ID ?? '') ? env.GITHUB_RUN_ID : undefined,
      modelDigest,
    },
    allowOlderRelease: inputs.boolean('allow-older-release', false),
    timeoutMs: duration('timeout', inputs.string('timeout', '10m'), 1_000, 6 * 3600_000),
    failureGraceMs: duration('failure-grace', inputs.string('failure-grace', '60s'), 0, 600_000),
    rollbackOnFailure: inputs.boolean('rollback-on-failure', true),
    dryRun: inputs.boolean('dry-run', false),
    forceConflicts: inputs.boolean('force-conflicts', false),
    workspace,
    bundlePath: path.join(
      env.RUNNER_TEMP || path.join(workspace, '.deploy-aks'),
      'deploy-aks',
      `rendered-${env.GITHUB_RUN_ID ?? 'local'}-${process.pid}.yaml`,
    ),
  };
}

/** A kubeconfig given as content (it has a newline or starts like YAML) or as a file path. */
function readKubeconfig(value: string, workspace: string): ClusterSource {
  if (value.includes('\n') || /^(apiVersion|kind|clusters)\s*:/.test(value)) {
    return {
      kind: 'kubeconfig',
      text: value,
      origin: "the 'kubeconfig' input",
      baseDir: workspace,
    };
  }
  const file = path.resolve(workspace, value);
  if (!existsSync(file)) {
    throw new ConfigurationError(
      `Invalid kubeconfig ${quote(value)}: no such file. Expected a kubeconfig file path, or its content.`,
    );
  }
  return {
    kind: 'kubeconfig',
    text: readFileSync(file, 'utf8'),
    origin: file,
    baseDir: path.dirname(file),
  };
}

function parseHttpsUrl(name: string, value: string): string {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigurationError(
      `Invalid ${name} ${quote(value)}. Expected a URL such as https://management.azure.com.`,
    );
  }
  requireSecureEndpoint(name, url, 'https://management.azure.com');
  return value.replace(/\/+$/, '');
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3600_000 };

/** Durations such as 10m, 90s, 1h30m, 500ms, or a bare number of seconds. */
export function parseDuration(value: string): number | undefined {
  if (/^\d+$/.test(value)) return Number(value) * 1000;
  const parts = [...value.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)];
  if (parts.length === 0 || parts.map((p) => p[0]).join('') !== value) return undefined;
  return Math.round(parts.reduce((sum, p) => sum + Number(p[1]) * UNIT_MS[p[2]], 0));
}

function duration(name: string, value: string, min: number, max: number): number {
  const ms = parseDuration(value.trim());
  if (ms === undefined || ms < min || ms > max) {
    throw new ConfigurationError(
      `Invalid ${name} ${quote(value)}. Expected a duration such as 10m, 90s or 1h30m ` +
        `(from ${min / 1000} s to ${max / 3600_000} h).`,
    );
  }
  return ms;
}
