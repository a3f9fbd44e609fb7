import type { SmokeResult } from './smoke';

/** What happened to one blob of the image. */
export interface BlobReport {
  what: string;
  digest: string;
  size: number;
  /** uploaded, mounted from another repository, already present, or pushed by docker. */
  status: 'uploaded' | 'mounted' | 'exists' | 'pushed' | 'reused';
  resumes?: number;
}

export interface BuildPushResult {
  mode: 'dockerfile' | 'model-layer';
  /** registry/repository@sha256:..., or the local tag when nothing was pushed. */
  image: string;
  /** The manifest digest, when the image is in the registry. */
  digest?: string;
  /** The manifest's media type and size, when the image is in the registry. */
  manifest?: { mediaType: string; size: number };
  /** The config digest: docker's image id. */
  imageId?: string;
  tags: string[];
  skipped: boolean;
  pushed: boolean;
  bytesUploaded: number;
  modelDigest?: string;
  modelFiles: number;
  modelBytes: number;
  smoke?: SmokeResult;
  blobs: BlobReport[];
  /** Wall time per phase, in order. */
  phases: Array<{ name: string; milliseconds: number }>;
}

/**
 * The `metadata` output, in the shape docker/build-push-action gives it: the manifest digest
 * and descriptor, the config digest, and the image names (comma-separated).
 */
export function metadataOutput(result: BuildPushResult, repository: string): string {
  const metadata: Record<string, unknown> = {};
  if (result.digest) {
    metadata['containerimage.digest'] = result.digest;
    if (result.manifest) {
      metadata['containerimage.descriptor'] = {
        mediaType: result.manifest.mediaType,
        digest: result.digest,
        size: result.manifest.size,
      };
    }
  }
  if (result.imageId) metadata['containerimage.config.digest'] = result.imageId;
  metadata['image.name'] = result.tags.map((tag) => `${repository}:${tag}`).join(',');
  return JSON.stringify(metadata);
}

/** Runs a phase inside a log group and records how long it took. */
export function phaseRunner(
  group: <T>(name: string, fn: () => Promise<T>) => Promise<T>,
  phases: BuildPushResult['phases'],
) {
  return async <T>(name: string, fn: () => Promise<T>): Promise<T> => {
    const started = Date.now();
    try {
      return await group(name, fn);
    } finally {
      phases.push({ name, milliseconds: Date.now() - started });
    }
  };
}
