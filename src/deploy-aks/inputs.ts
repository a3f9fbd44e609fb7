import { existsSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { readAzureIdentity, type AzureIdentitySettings } from '../common/credential';
import { ConfigurationError, quote } from '../common/errors';
import { requireSecureEndpoint, type Inputs } from '../common/inputs';
import type { Logger } from '../common/logger';
import type { AksCluster } from './aks';
import { parseField, showField, type FieldPath } from './analysis/field';
import { parseSamples, type Sample } from './analysis/samples';
import type { Thresholds } from './analysis/verdict';
import { parseImageInputs, type ImageEntry } from './images';
import { parseKeyValues, type Provenance } from './render';

/** Where the cluster's credentials come from. */
export type ClusterSource =
  | { kind: 'aks'; cluster: AksCluster; armEndpoint: string }
  | { kind: 'kubeconfig'; text: string; origin: string; baseDir: string };

export type Strategy = 'basic' | 'canary' | 'blue-green';
export type StrategyAction = 'deploy' | 'promote' | 'reject';

/** The model-quality gate: sample requests sent to the new and the stable version, compared. */
export interface AnalysisSettings {
  /** The analysis-requests file as given, for messages. */
  file: string;
  samples: Sample[];
  /** Where in each answer the compared value is; empty compares whole answers. */
  field: FieldPath;
  fieldText: string;
  /** The request path samples without their own go to. */
  path: string;
  /** The container port to send to; the workload's first container port when unset. */
  port?: number;
  thresholds: Thresholds;
  /** Samples in flight at once. */
  concurrency: number;
}

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
  /** basic replaces the running version; canary and blue-green put the new one beside it. */
  strategy: Strategy;
  /** deploy the new version; promote or reject it (canary and blue-green). */
  action: StrategyAction;
  /** Canary pods: a count (baseline-and-canary-replicas) or a share of the Service's pods. */
  canaryReplicas: { count: number } | { percentage: number };
  /** The model-quality gate, when analysis-requests is set. */
  analysis?: AnalysisSettings;
  /** Promote when the analysis passes; reject (and fail) when it does not. */
  autoPromote: boolean;
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

  const dryRun = inputs.boolean('dry-run', false);
  const progressive = readStrategy(inputs, workspace);
  if (dryRun && progressive.action !== 'deploy') {
    throw new ConfigurationError(
      `Invalid dry-run 'true' with action ${quote(progressive.action)}: a dry run shows what ` +
        `deploy would apply. Use dry-run with action: deploy.`,
    );
  }

  return {
    ...progressive,
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
    dryRun,
    forceConflicts: inputs.boolean('force-conflicts', false),
    workspace,
    bundlePath: path.join(
      env.RUNNER_TEMP || path.join(workspace, '.deploy-aks'),
      'deploy-aks',
      `rendered-${env.GITHUB_RUN_ID ?? 'local'}-${process.pid}.yaml`,
    ),
  };
}

/** strategy, action, the canary size and the analysis, checked together. */
function readStrategy(
  inputs: Inputs,
  workspace: string,
): Pick<DeploySettings, 'strategy' | 'action' | 'canaryReplicas' | 'analysis' | 'autoPromote'> {
  const strategy = inputs.choice('strategy', ['basic', 'canary', 'blue-green'] as const, 'basic');
  const action = inputs.choice('action', ['deploy', 'promote', 'reject'] as const, 'deploy');
  // Accepted for Azure/k8s-deploy users: only the methods that need no service mesh or ingress.
  const split = inputs.string('traffic-split-method', 'pod');
  if (split !== 'pod') {
    throw new ConfigurationError(
      `Invalid traffic-split-method ${quote(split)}. Expected pod: canary pods beside the stable ` +
        `ones behind the same Service (SMI traffic splits are not supported).`,
    );
  }
  const route = inputs.string('route-method', 'service');
  if (route !== 'service') {
    throw new ConfigurationError(
      `Invalid route-method ${quote(route)}. Expected service: blue-green switches the Service's ` +
        `selector (ingress and SMI routing are not supported).`,
    );
  }
  if (strategy === 'basic' && action !== 'deploy') {
    throw new ConfigurationError(
      `Invalid action ${quote(action)} with strategy 'basic'. Expected strategy canary or ` +
        `blue-green: only they leave a new version beside the stable one to promote or reject.`,
    );
  }
  const count = inputs.optional('baseline-and-canary-replicas');
  const percentage = inputs.optional('percentage');
  if (count !== undefined && percentage !== undefined) {
    throw new ConfigurationError(
      `Set either baseline-and-canary-replicas ${quote(count)} or percentage ${quote(percentage)}, ` +
        `not both: one decides how many canary pods run.`,
    );
  }
  let canaryReplicas: DeploySettings['canaryReplicas'] = { percentage: 20 };
  if (count !== undefined) {
    canaryReplicas = { count: inputs.integer('baseline-and-canary-replicas', 1, 1, 100) };
  } else if (percentage !== undefined) {
    const value = Number(percentage.replace(/%$/, ''));
    if (!/^\d+(\.\d+)?%?$/.test(percentage) || value <= 0 || value >= 50) {
      throw new ConfigurationError(
        `Invalid percentage ${quote(percentage)}. Expected a share of the Service's pods above 0 ` +
          `and below 50, such as 20: as many baseline pods run beside the canary ones.`,
      );
    }
    canaryReplicas = { percentage: value };
  }
  if ((count !== undefined || percentage !== undefined) && strategy !== 'canary') {
    throw new ConfigurationError(
      `Input '${count !== undefined ? 'baseline-and-canary-replicas' : 'percentage'}' applies to ` +
        `strategy canary only; strategy is ${quote(strategy)}.`,
    );
  }

  const requests = inputs.optional('analysis-requests');
  const autoPromote = inputs.boolean('auto-promote', false);
  let analysis: AnalysisSettings | undefined;
  if (requests !== undefined) {
    if (strategy === 'basic' || action !== 'deploy') {
      throw new ConfigurationError(
        `Input 'analysis-requests' needs strategy canary or blue-green with action deploy ` +
          `(strategy is ${quote(strategy)}, action ${quote(action)}): the analysis compares the new ` +
          `version with the stable one while both run.`,
      );
    }
    const file = path.resolve(workspace, requests);
    if (!existsSync(file)) {
      throw new ConfigurationError(
        `Invalid analysis-requests ${quote(requests)}: no such file (looked in ${workspace}). ` +
          `Expected a JSON Lines file of sample requests.`,
      );
    }
    const fieldText = inputs.string('analysis-field', '');
    const analysisPath = inputs.string('analysis-path', '/score');
    if (!analysisPath.startsWith('/')) {
      throw new ConfigurationError(
        `Invalid analysis-path ${quote(analysisPath)}. Expected a request path such as /score.`,
      );
    }
    const port = inputs.optional('analysis-port');
    const field = parseField(fieldText);
    analysis = {
      file: requests,
      samples: parseSamples(readFileSync(file, 'utf8'), requests),
      field,
      fieldText: showField(field),
      path: analysisPath,
      port: port === undefined ? undefined : inputs.integer('analysis-port', 0, 1, 65535),
      thresholds: {
        maxErrorRate: share(inputs, 'analysis-max-error-rate', 0),
        minAgreement: share(inputs, 'analysis-min-agreement', 0.9),
        minAccuracy: share(inputs, 'analysis-min-accuracy', 0),
        maxAccuracyDrop: share(inputs, 'analysis-max-accuracy-drop', 0.02),
        maxLatencyRatio: ratio(inputs, 'analysis-max-latency-ratio', 1.5),
      },
      concurrency: 4,
    };
  }
  if (autoPromote && !analysis) {
    throw new ConfigurationError(
      "Input 'auto-promote' needs 'analysis-requests': promotion is decided by the analysis. " +
        'Without one, promote in a later job (action: promote), e.g. in a protected environment.',
    );
  }
  return { strategy, action, canaryReplicas, analysis, autoPromote };
}

/** A share from 0 to 1, given as 0.9 or as 90%. */
function share(inputs: Inputs, name: string, fallback: number): number {
  const value = inputs.optional(name);
  if (value === undefined) return fallback;
  const match = /^(\d+(?:\.\d+)?)(%?)$/.exec(value);
  const parsed = match ? Number(match[1]) / (match[2] ? 100 : 1) : NaN;
  if (!(parsed >= 0 && parsed <= 1)) {
    throw new ConfigurationError(
      `Invalid ${name} ${quote(value)}. Expected a share from 0 to 1, such as 0.9 or 90%.`,
    );
  }
  return parsed;
}

function ratio(inputs: Inputs, name: string, fallback: number): number {
  const value = inputs.optional(name);
  if (value === undefined) return fallback;
  const parsed = /^\d+(\.\d+)?$/.test(value) ? Number(value) : NaN;
  if (!(parsed >= 1 && parsed <= 100)) {
    throw new ConfigurationError(
      `Invalid ${name} ${quote(value)}. Expected a number from 1 to 100, such as 1.5 (the new ` +
        `version's p95 latency at most 1.5 times the stable one's).`,
    );
  }
  return parsed;
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
