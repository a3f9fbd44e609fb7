import { ConfigurationError, quote } from '../common/errors';
import {
  DOCKER_HUB,
  parseImageReference,
  repositoryOf,
  type ImageReference,
} from '../common/image-reference';

/** An `images` entry: the reference as written (what goes into the manifest), parsed. */
export interface ImageEntry extends ImageReference {
  raw: string;
}

/** Parses an image reference the way the kubelet reads it; undefined when it is not one. */
export function parseImage(raw: string): ImageEntry | undefined {
  try {
    return { raw: raw.trim(), ...parseImageReference(raw, 'image', DOCKER_HUB) };
  } catch (error) {
    if (error instanceof ConfigurationError) return undefined;
    throw error;
  }
}

/** Reads the `images` input: full references, each with a tag or a digest, one per repository. */
export function parseImageInputs(lines: string[]): ImageEntry[] {
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
