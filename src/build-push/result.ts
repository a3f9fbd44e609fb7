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
  digest?: string;
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
