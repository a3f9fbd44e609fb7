import { ConfigurationError, quote } from '../common/errors';

/** An image reference split the way registries and the kubelet read it. */
export interface ImageReference {
  /** The reference as written. */
  raw: string;
  /** Registry host (with port), or docker.io when the reference names none. */
  registry: string;
  /** Path inside the registry; `library/x` for a single-name Docker Hub image. */
  path: string;
  tag?: string;
  /** `sha256:<hex>` when the reference pins a digest. */
  digest?: string;
}

const DIGEST = /^[a-z0-9]+(?:[.+_-][a-z0-9]+)*:[a-f0-9]{32,}$/;
const TAG = /^[\w][\w.-]{0,127}$/;
const PATH_COMPONENT = /^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$/;

/** Parses an image reference; undefined when it is not one. */
export function parseImage(raw: string): ImageReference | undefined {
  let rest = raw.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) return undefined;
  }
  let tag: string | undefined;
  const colon = rest.lastIndexOf(':');
  if (colon > rest.lastIndexOf('/')) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
    if (!TAG.test(tag)) return undefined;
  }
  const parts = rest.split('/');
  let registry = 'docker.io';
  // The first component is a registry when it looks like a host: a dot, a port, or localhost.
  if (parts.length > 1 && /[.:]|^localhost$/.test(parts[0])) {
    registry = parts.shift()!;
    if (!/^[a-zA-Z0-9.-]+(?::\d+)?$/.test(registry) && !/^\[[0-9a-f:]+\](?::\d+)?$/i.test(registry))
      return undefined;
  }
  if (parts.length === 0 || !parts.every((part) => PATH_COMPONENT.test(part))) return undefined;
  if (registry === 'docker.io' && parts.length === 1) parts.unshift('library');
  return { raw: raw.trim(), registry: registry.toLowerCase(), path: parts.join('/'), tag, digest };
}

/** `registry/path`: what two references must share for one to replace the other. */
export function repositoryOf(image: ImageReference): string {
  return `${image.registry}/${image.path}`;
}

/** Reads the `images` input: full references, each with a tag or a digest, one per repository. */
export function parseImageInputs(lines: string[]): ImageReference[] {
  const seen = new Map<string, string>();
  return lines.map((line) => {
    const image = parseImage(line);
    if (!image) {
      throw new ConfigurationError(
        `Invalid images entry ${quote(line)}. Expected a full image reference such as ` +
          `myregistry.azurecr.io/app@sha256:<64 hex digits> or registry:5000/app:1.2.`,
      );
    }
    if (!image.tag && !image.digest) {
      throw new ConfigurationError(
        `Invalid images entry ${quote(line)}. Expected a tag or a digest, e.g. ` +
          `${line}@sha256:<digest> (build-push's 'image' output) or ${line}:1.0.`,
      );
    }
    const repository = repositoryOf(image);
    const earlier = seen.get(repository);
    if (earlier !== undefined) {
      throw new ConfigurationError(
        `Invalid images: ${quote(earlier)} and ${quote(line)} name the same repository; ` +
          `give one reference per repository.`,
      );
    }
    seen.set(repository, line);
    return image;
  });
}
