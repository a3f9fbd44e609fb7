import { ConfigurationError, quote } from './errors';

/**
 * The grammar of Distribution's reference package: a repository is path components of lower-case
 * letters and digits joined by `.`, `_`, `__` or runs of `-`, separated by `/`; a tag is up to 128
 * word characters, dots and dashes, not starting with either; a registry host may carry a port.
 */
const COMPONENT = /^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$/;
const TAG = /^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$/;
const HOST =
  /^(?:[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?(?:\.[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?)*|\[[0-9a-fA-F:]+\])(?::[0-9]{1,5})?$/;
const DIGEST = /^(?:sha256:[a-f0-9]{64}|sha512:[a-f0-9]{128})$/;

/** The registry a reference without a registry part names, as docker and the kubelet read it. */
export const DOCKER_HUB = 'docker.io';

/** A parsed image reference: `registry/repository[:tag][@digest]`. */
export interface ImageReference {
  registry: string;
  repository: string;
  tag?: string;
  digest?: string;
}

export function validateRegistry(value: string, input = 'registry'): string {
  const host = value.replace(/^https:\/\//, '').replace(/\/+$/, '');
  if (!HOST.test(host) || host !== host.toLowerCase()) {
    throw new ConfigurationError(
      `Invalid ${input} ${quote(value)}. Expected a lower-case registry host name, optionally ` +
        `with a port, such as myacr.azurecr.io or 127.0.0.1:5000.`,
    );
  }
  return host;
}

export function validateRepository(value: string, input = 'repository'): string {
  const components = value.split('/');
  if (value.length > 255 || !components.every((component) => COMPONENT.test(component))) {
    throw new ConfigurationError(
      `Invalid ${input} ${quote(value)}. Expected lower-case letters, digits and separators ` +
        `(., _, __, -) in path components joined by /, such as ai/image-classifier.` +
        (value !== value.toLowerCase() ? ' Repository names must be lower case.' : ''),
    );
  }
  return value;
}

export function validateTag(value: string, input = 'tags'): string {
  if (!TAG.test(value)) {
    throw new ConfigurationError(
      `Invalid tag ${quote(value)} in '${input}'. Expected up to 128 letters, digits, '_', '.' ` +
        `and '-', not starting with '.' or '-'.`,
    );
  }
  return value;
}

/**
 * Parses `registry/repository[:tag][@digest]`. The first path component is a registry when it
 * looks like a host (a dot, a port, or `localhost`); otherwise the reference lives in
 * `defaultRegistry`. For Docker Hub, a single-component name means `library/<name>`, as the
 * kubelet resolves it. No tag is implied: callers that want `latest` add it.
 */
export function parseImageReference(
  value: string,
  input: string,
  defaultRegistry: string,
): ImageReference {
  let rest = value.trim();
  let digest: string | undefined;
  const at = rest.indexOf('@');
  if (at >= 0) {
    digest = rest.slice(at + 1);
    rest = rest.slice(0, at);
    if (!DIGEST.test(digest)) {
      throw new ConfigurationError(
        `Invalid ${input} ${quote(value)}: the digest after @ must be sha256: and 64 hex digits.`,
      );
    }
  }
  let tag: string | undefined;
  const lastSlash = rest.lastIndexOf('/');
  const colon = rest.lastIndexOf(':');
  if (colon > lastSlash) {
    tag = rest.slice(colon + 1);
    rest = rest.slice(0, colon);
  }
  const firstSlash = rest.indexOf('/');
  const first = firstSlash >= 0 ? rest.slice(0, firstSlash) : '';
  const hasRegistry = first !== '' && (/[.:]/.test(first) || first === 'localhost');
  const registry = hasRegistry ? validateRegistry(first, input) : defaultRegistry;
  let repository = hasRegistry ? rest.slice(firstSlash + 1) : rest;
  if (registry === DOCKER_HUB && !repository.includes('/')) repository = `library/${repository}`;
  try {
    validateRepository(repository, input);
    if (tag !== undefined) validateTag(tag, input);
  } catch (error) {
    throw new ConfigurationError(
      `Invalid ${input} ${quote(value)}. Expected an image reference such as ` +
        `myacr.azurecr.io/ai/app-base:1.0 or ai/app-base@sha256:<64 hex digits>. ` +
        `${(error as Error).message}`,
    );
  }
  return { registry, repository, tag, digest };
}

/** `registry/repository`: what two references must share for one to replace the other. */
export function repositoryOf(reference: ImageReference): string {
  return `${reference.registry}/${reference.repository}`;
}

export function formatReference(reference: ImageReference): string {
  return (
    repositoryOf(reference) +
    (reference.tag ? `:${reference.tag}` : '') +
    (reference.digest ? `@${reference.digest}` : '')
  );
}
