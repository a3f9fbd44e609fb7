import type { BodySource } from '../common/body-source';
import { errorFactory } from '../common/http';
import { HttpError } from '../common/http-error';
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
  /**
   * Base64 MD5 of the whole object that the service vouches for, when it has one: Azure's
   * Content-MD5, or the ETag of an S3 single-part upload (which is the MD5 of its bytes).
   */
  contentMd5?: string;
  /** Where contentMd5 came from, for messages: 'Content-MD5' (the default) or 'ETag (MD5)'. */
  md5Source?: string;
  /** Base64 SHA-256 of the whole object the service stores (S3's x-amz-checksum-sha256). */
  checksumSha256?: string;
  /** The object's address, without any credential, for logs, outputs and image labels. */
  uri: string;
}

/**
 * What the download engine needs from a storage service. Azure Blob and S3 implement it; any
 * store with ranged GETs, ETags and conditional requests can.
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
  openRange(object: RemoteObject, start: number, end: number): Promise<BodySource>;
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

/** An answer of Azure Storage or S3 with a status the store did not expect. */
export class StorageError extends HttpError {
  override readonly name = 'StorageError';
}

/** How the stores build their errors from the shared status mapping. */
export const storageError = errorFactory(StorageError);
