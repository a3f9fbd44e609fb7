import type { Readable } from 'node:stream';
import type { BlobSpec } from './specs';

/** One object as the store describes it, pinned to the content about to be downloaded. */
export interface RemoteObject {
  /** Blob name (or object key) in the store. */
  name: string;
  size: number;
  /** The ETag as the service returns it, quotes included. */
  etag: string;
  versionId?: string;
  snapshot?: string;
  lastModified?: string;
  /** Base64 MD5 the service stores for the whole object, when it has one. */
  contentMd5?: string;
  /** The object's address, without any credential, for logs, outputs and image labels. */
  uri: string;
}

/**
 * What the download engine needs from a storage service. Azure Blob implements it; any store
 * with ranged GETs, ETags and conditional requests can.
 */
export interface ObjectStore {
  /** Names the container or bucket in messages. */
  readonly description: string;
  /** Properties of one object, honouring its pin; fails clearly when it does not exist. */
  head(spec: BlobSpec): Promise<RemoteObject>;
  /** Every object whose name starts with `prefix`. */
  list(prefix: string): Promise<RemoteObject[]>;
  /**
   * Bytes `start`..`end` (inclusive) of `object`, only while it still has `object.etag`;
   * rejects with ObjectChangedError otherwise.
   */
  openRange(object: RemoteObject, start: number, end: number): Promise<Readable>;
}

/** The object was overwritten or deleted after its properties were read. */
export class ObjectChangedError extends Error {
  constructor(readonly object: RemoteObject) {
    super(
      `'${object.name}' changed while it was being downloaded (it no longer has ETag ` +
        `${object.etag}); nothing was written. Run again to fetch the new content, or pin a ` +
        `version or snapshot to fetch one exact content.`,
    );
    this.name = 'ObjectChangedError';
  }
}
