import { ConfigurationError, quote } from '../common/errors';
import type { Logger } from '../common/logger';
import { repositoryOf } from '../common/image-reference';
import { parseImage, type ImageEntry } from './images';
import { applyRank, isClusterScoped } from './kinds';
import {
  describeSource,
  ManifestError,
  manifestError,
  type KubeObject,
  type ManifestObject,
  type Source,
} from './manifests';
import { checkSchema, isBuiltInGroupVersion } from './schema';

/** Where provenance annotations live. */
export const ANNOTATION_PREFIX = 'ai-app-delivery.github.io';

export interface Provenance {
  commit?: string;
  runUrl?: string;
  /** GITHUB_RUN_ID: runs are numbered in the order they start, which orders releases. */
  runId?: string;
  modelDigest?: string;
}

export interface RenderOptions {
  /** The `namespace` input, when given. */
  namespace?: string;
  images: ImageEntry[];
  /** Only warn, instead of failing, when an `images` entry matches no container. */
  allowUnmatchedImages?: boolean;
  labels: Record<string, string>;
  annotations: Record<string, string>;
  provenance: Provenance;
}

export interface RenderedObject {
  object: KubeObject;
  source: Source;
}

export interface Rendered {
  objects: RenderedObject[];
  /** The namespace objects without one were put in. */
  namespace: string;
  /** Image replacements made, `kind/name container: old → new`. */
  replacements: string[];
  /** Entries of `images` that matched no container. */
  unusedImages: string[];
}

/**
 * Turns parsed manifests into what is applied: images replaced by repository, namespaces set,
 * labels and provenance added, every object checked against its kind's schema, sorted in
 * dependency order. Inputs are not modified.
 */
export function render(
  manifests: ManifestObject[],
  options: RenderOptions,
  logger: Logger,
): Rendered {
  const namespace = chooseNamespace(manifests, options.namespace);
  const used = new Set<string>();
  const replacements: string[] = [];
  const containerImages = new Set<string>();
  const objects = manifests.map(({ object: original, source }) => {
    const object = structuredClone(original);
    setNamespace(object, namespace, options.namespace, source);
    for (const container of podContainers(object)) {
      containerImages.add(container.image);
      const replacement = replaceImage(container.image, options.images);
      if (replacement) {
        used.add(replacement.raw);
        if (replacement.raw !== container.image) {
          replacements.push(
            `${object.kind}/${object.metadata.name} ${container.name}: ${container.image} → ${replacement.raw}`,
          );
          container.image = replacement.raw;
        }
      }
    }
    addMetadata(object, options);
    return { object, source };
  });

  const problems: Array<{ source: Source; message: string }> = [];
  for (const { object, source } of objects) {
    const check = checkSchema(object);
    if (check.kind === 'invalid') {
      problems.push({
        source,
        message: `${object.kind}/${object.metadata.name}: ${check.errors.join('; ')}`,
      });
    } else if (check.kind === 'unknown') {
      if (isBuiltInGroupVersion(object.apiVersion)) {
        problems.push({ source, message: check.reason });
      } else {
        logger.info(
          `${object.kind}/${object.metadata.name}: ${check.reason}; the API server will check it.`,
        );
      }
    }
  }
  if (problems.length > 0) {
    throw new ManifestError(
      `Manifests do not match the Kubernetes schema:\n` +
        problems.map((p) => `  - ${describeSource(p.source)} ${p.message}`).join('\n'),
      problems,
    );
  }
  checkDuplicates(objects);

  const unusedImages = options.images.filter((image) => !used.has(image.raw)).map((i) => i.raw);
  if (unusedImages.length > 0) {
    // A deploy that leaves the old image running must not look like a success.
    const found = [...containerImages].map((image) => quote(image)).join(', ') || 'none';
    const lines = unusedImages.map(
      (image) =>
        `images entry ${quote(image)} matched no container: no manifest uses repository ` +
        `${repositoryOf(parseImage(image)!)}`,
    );
    if (!options.allowUnmatchedImages) {
      throw new ConfigurationError(
        `${lines.join('; ')}. The manifests' containers use ${found}. Name the same registry ` +
          `and repository in the manifest (a tag or digest there is replaced), or set ` +
          `allow-unmatched-images: true to deploy anyway.`,
      );
    }
    for (const line of lines) logger.warning(`${line}.`);
  }
  // A stable sort keeps the manifests' own order within a rank.
  objects.sort((a, b) => applyRank(a.object.kind) - applyRank(b.object.kind));
  return { objects, namespace, replacements, unusedImages };
}

/** The input's namespace; else the one namespace the manifests name or create; else default. */
export function chooseNamespace(manifests: ManifestObject[], input?: string): string {
  if (input !== undefined) return input;
  const named = new Set<string>();
  for (const { object } of manifests) {
    if (object.kind === 'Namespace' && object.apiVersion === 'v1') named.add(object.metadata.name!);
    else if (typeof object.metadata.namespace === 'string') named.add(object.metadata.namespace);
  }
  return named.size === 1 ? [...named][0] : 'default';
}

function setNamespace(
  object: KubeObject,
  namespace: string,
  input: string | undefined,
  source: Source,
) {
  if (isClusterScoped(object.kind)) return;
  const own = object.metadata.namespace;
  if (own === undefined || own === '') {
    object.metadata.namespace = namespace;
  } else if (input !== undefined && own !== input) {
    throw manifestError(
      source,
      `${object.kind}/${object.metadata.name} is in namespace ${quote(own)}, but the namespace ` +
        `input is ${quote(input)}. Remove metadata.namespace from the manifest, or the ` +
        `namespace input.`,
    );
  }
}

interface Container {
  name: string;
  image: string;
}

/** The pod spec inside an object, wherever its kind keeps it. */
export function podSpecOf(object: KubeObject): Record<string, unknown> | undefined {
  // eslint-disable-next-line @typescript-eslint/no-explicit-any -- nested pod spec paths differ per kind
  const spec = object.spec as Record<string, any> | undefined;
  switch (object.kind) {
    case 'Pod':
      return spec;
    case 'CronJob':
      return spec?.jobTemplate?.spec?.template?.spec;
    case 'Deployment':
    case 'StatefulSet':
    case 'DaemonSet':
    case 'ReplicaSet':
    case 'ReplicationController':
    case 'Job':
    case 'PodTemplate':
      return object.kind === 'PodTemplate'
        ? (object.template as { spec?: Record<string, unknown> } | undefined)?.spec
        : spec?.template?.spec;
    default:
      return undefined;
  }
}

/** Containers, init containers and ephemeral containers of an object's pod spec. */
export function podContainers(object: KubeObject): Container[] {
  const spec = podSpecOf(object);
  if (!spec) return [];
  return ['initContainers', 'containers', 'ephemeralContainers'].flatMap((field) => {
    const list = spec[field];
    return Array.isArray(list)
      ? (list as Container[]).filter((c) => c && typeof c.image === 'string')
      : [];
  });
}

/** The `images` entry with the same repository as `current`, if any. */
export function replaceImage(current: string, images: ImageEntry[]): ImageEntry | undefined {
  const parsed = parseImage(current);
  if (!parsed) return undefined;
  const repository = repositoryOf(parsed);
  return images.find((image) => repositoryOf(image) === repository);
}

function addMetadata(object: KubeObject, options: RenderOptions): void {
  const metadata = object.metadata;
  if (Object.keys(options.labels).length > 0) {
    metadata.labels = { ...(metadata.labels as Record<string, string>), ...options.labels };
  }
  const provenance: Record<string, string> = {};
  const { commit, runUrl, runId, modelDigest } = options.provenance;
  if (commit) provenance[`${ANNOTATION_PREFIX}/commit`] = commit;
  if (runUrl) provenance[`${ANNOTATION_PREFIX}/run-url`] = runUrl;
  if (runId) provenance[`${ANNOTATION_PREFIX}/run-id`] = runId;
  const images = podContainers(object).map((c) => c.image);
  const pinned = [...new Set(images.filter((image) => image.includes('@')))];
  if (pinned.length > 0) provenance[`${ANNOTATION_PREFIX}/images`] = pinned.join(',');
  if (modelDigest && images.length > 0)
    provenance[`${ANNOTATION_PREFIX}/model-digest`] = modelDigest;
  const annotations = { ...options.annotations, ...provenance };
  if (Object.keys(annotations).length > 0) {
    metadata.annotations = { ...(metadata.annotations as Record<string, string>), ...annotations };
  }
}

function checkDuplicates(objects: RenderedObject[]): void {
  const seen = new Map<string, Source>();
  for (const { object, source } of objects) {
    const key = `${object.apiVersion.split('/').slice(0, -1).join('/')}|${object.kind}|${object.metadata.namespace ?? ''}|${object.metadata.name}`;
    const earlier = seen.get(key);
    if (earlier) {
      throw manifestError(
        source,
        `${object.kind}/${object.metadata.name} is defined twice: here and in ` +
          `${describeSource(earlier)}.`,
      );
    }
    seen.set(key, source);
  }
}

/** key=value lines (labels, annotations) into a map; names the input on a bad line. */
export function parseKeyValues(name: string, lines: string[]): Record<string, string> {
  const result: Record<string, string> = {};
  for (const line of lines) {
    const at = line.indexOf('=');
    const key = at > 0 ? line.slice(0, at).trim() : '';
    if (
      !/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$/.test(key)
    ) {
      throw new ConfigurationError(
        `Invalid ${name} entry ${quote(line)}. Expected key=value, one per line, with a key ` +
          `such as app.kubernetes.io/part-of or team.`,
      );
    }
    result[key] = line.slice(at + 1).trim();
  }
  return result;
}
