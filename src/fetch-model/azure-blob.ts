import { isRestError } from '@azure/core-rest-pipeline';
import {
  AnonymousCredential,
  ContainerClient,
  newPipeline,
  type BlobClient,
} from '@azure/storage-blob';
import { BodyClaims, transportRequestPolicy } from '../common/azure-request-policy';
import type { BodySource } from '../common/body-source';
import type { TokenSource } from '../common/credential';
import { STORAGE_SCOPE } from '../common/clouds';
import { ConfigurationError, quote } from '../common/errors';
import { answerError, ConnectionPool, isRetryableStatus } from '../common/http';
import type { Logger } from '../common/logger';
import { xmlErrorBody, type HttpError } from '../common/http-error';
import { withRetry, type RetryPolicy } from '../common/retry';
import { quoteEtag, sameEtag, type BlobSpec } from './specs';
import {
  ObjectChangedError,
  StorageError,
  storageError,
  type ObjectStore,
  type RemoteObject,
} from './store';

/** How requests to storage are authorized. */
export type BlobAuth =
  | { kind: 'oidc'; tokens: TokenSource }
  | { kind: 'sas'; /** The SAS query string, without the leading '?'. */ query: string };

export interface AzureBlobStoreOptions {
  /** The account's blob endpoint, e.g. https://acct.blob.core.windows.net. */
  endpoint: URL;
  container: string;
  auth: BlobAuth;
  /** Connections kept open to the endpoint. */
  maxConnections: number;
  logger: Logger;
  retry?: RetryPolicy;
  /** A socket idle this long counts as a dropped connection. Default 60 s. */
  idleTimeoutMs?: number;
}

type Pin = BlobSpec['pin'];

/**
 * Azure Blob Storage through @azure/storage-blob: Get Blob Properties, List Blobs and ranged Get
 * Blob are the SDK's calls, signed by its bearer-token policy (with this action's masked,
 * cached Entra tokens) or by a SAS, and sent over this project's transport (proxy, https-only
 * credentials, keep-alive pool, idle timeouts). Retries are this store's and the download
 * engine's, not the SDK's: see `retryOptions` below.
 */
export class AzureBlobStore implements ObjectStore {
  readonly description: string;
  private readonly base: string;
  private readonly container: ContainerClient;
  /** Ranged reads' bodies, taken from the transport as they come off the socket. */
  private readonly bodies = new BodyClaims();
  /** One client per blob and pin: building one parses its URL, and a blob is read in many ranges. */
  private readonly clients = new Map<string, BlobClient>();

  constructor(private readonly options: AzureBlobStoreOptions) {
    const endpoint = options.endpoint.toString().replace(/\/+$/, '');
    this.base = `${endpoint}/${options.container}`;
    this.description = `container '${options.container}' at ${endpoint}`;
    const { auth } = options;
    const pipeline = newPipeline(auth.kind === 'oidc' ? auth.tokens : new AnonymousCredential(), {
      httpClient: transportRequestPolicy(
        new ConnectionPool({ maxSockets: options.maxConnections }),
        { idleTimeoutMs: options.idleTimeoutMs, claims: this.bodies },
      ),
      audience: STORAGE_SCOPE,
      // One try per call at the SDK's layer. Its retry policy would retry 500 and 503 only,
      // without Retry-After, with no delay before the first retry, and beneath ours; this
      // store retries 408, 429, 5xx and dropped connections with jittered backoff and the
      // server's Retry-After (capped), logging each retry, and the engine resumes a range
      // from the bytes it already has.
      retryOptions: { maxTries: 1 },
    });
    this.container = new ContainerClient(
      auth.kind === 'sas' ? `${this.base}?${auth.query}` : this.base,
      pipeline,
    );
  }

  async head(spec: BlobSpec): Promise<RemoteObject> {
    const pin = spec.pin?.kind === 'etag' ? undefined : spec.pin;
    const properties = await this.call(
      `HEAD '${spec.name}'`,
      `Reading properties of '${spec.name}'`,
      spec.name,
      () => this.blob(spec.name, pin).getProperties(),
    );
    const object: RemoteObject = {
      name: spec.name,
      size: properties.contentLength ?? NaN,
      etag: properties.etag ?? '',
      versionId: pin?.kind === 'version' ? pin.value : properties.versionId,
      snapshot: pin?.kind === 'snapshot' ? pin.value : undefined,
      lastModified: properties.lastModified?.toUTCString(),
      contentMd5: base64(properties.contentMD5),
      uri: this.publicUri(spec.name, pin),
    };
    if (!Number.isSafeInteger(object.size) || object.etag === '') {
      throw new Error(`Storage answered HEAD '${spec.name}' without Content-Length or ETag.`);
    }
    if (spec.pin?.kind === 'etag' && !sameEtag(spec.pin.value, object.etag)) {
      throw new ConfigurationError(
        `Blob '${spec.name}' in ${this.description} no longer has the pinned ETag ` +
          `${quote(spec.pin.value)}; it now has ${object.etag}. Pin the new ETag, or a ` +
          `version or snapshot, to choose which content to fetch.`,
      );
    }
    return object;
  }

  async list(prefix: string): Promise<RemoteObject[]> {
    const objects: RemoteObject[] = [];
    let marker: string | undefined;
    do {
      // One page per call, so a failed page is retried alone, from its own marker.
      const page = await this.call('List blobs', `Listing blobs under '${prefix}'`, undefined, () =>
        this.container
          .listBlobsFlat({ prefix })
          .byPage({ continuationToken: marker })
          .next()
          .then((result) => result.value),
      );
      for (const blob of page.segment.blobItems) {
        const { properties } = blob;
        const object: RemoteObject = {
          name: blob.name,
          size: properties.contentLength ?? NaN,
          etag: quoteEtag(properties.etag ?? ''),
          versionId: blob.versionId || undefined,
          lastModified: properties.lastModified?.toUTCString(),
          contentMd5: base64(properties.contentMD5),
          uri: this.publicUri(blob.name),
        };
        // Folder markers of hierarchical accounts are empty blobs named like a directory.
        if (blob.name.endsWith('/') && object.size === 0) continue;
        objects.push(object);
      }
      marker = page.continuationToken || undefined;
    } while (marker);
    return objects;
  }

  async openRange(object: RemoteObject, start: number, end: number): Promise<BodySource> {
    const pin: Pin = object.snapshot
      ? { kind: 'snapshot', value: object.snapshot }
      : object.versionId
        ? { kind: 'version', value: object.versionId }
        : undefined;
    // A version or snapshot never changes, but If-Match is sent anyway: it is what detects an
    // unpinned blob overwritten mid-download, and it costs nothing on pinned ones.
    let claimed;
    try {
      claimed = await this.bodies.claim((abortSignal) =>
        this.blob(object.name, pin).download(start, end - start + 1, {
          abortSignal,
          conditions: { ifMatch: object.etag },
          // The engine resumes a range cut mid-body, from the bytes it already has.
          maxRetryRequests: 0,
        }),
      );
    } catch (error) {
      const status = isRestError(error) ? error.statusCode : undefined;
      if (status === 412 || status === 404) throw new ObjectChangedError(object);
      throw this.explainError(error, `GET '${object.name}'`, object.name);
    }
    const { result: response, body } = claimed;
    // The SDK checked the answer; its own stream wraps only a stand-in (see BodyClaims).
    response.readableStreamBody?.destroy();
    if (!body) throw new Error(`Storage answered GET '${object.name}' without a body.`);
    const status = response._response.status;
    if (status !== 206 && !(status === 200 && start === 0)) {
      body.destroy();
      throw new StorageError(`GET '${object.name}' failed: HTTP ${status}`, status, undefined);
    }
    if (response.contentLength !== end - start + 1) {
      body.destroy();
      throw new Error(
        `Storage sent ${response.contentLength} bytes for range ${start}-${end} of '${object.name}'.`,
      );
    }
    return body;
  }

  /**
   * Runs one SDK call with this store's retry policy, turning the SDK's errors into the
   * StorageError (and the hints) users get from every store.
   */
  private async call<T>(
    what: string,
    description: string,
    blob: string | undefined,
    operation: () => Promise<T>,
  ): Promise<T> {
    try {
      return await withRetry(
        async () => {
          try {
            return await operation();
          } catch (error) {
            throw sdkError(error, (status) => (isRetryableStatus(status) ? description : what));
          }
        },
        { policy: this.options.retry, logger: this.options.logger, description },
      );
    } catch (error) {
      throw error instanceof StorageError ? this.explain(error, blob) : error;
    }
  }

  private explainError(error: unknown, what: string, blob: string): unknown {
    const converted = sdkError(error, () => what);
    return converted instanceof StorageError ? this.explain(converted, blob) : converted;
  }

  private blob(name: string, pin: Pin): BlobClient {
    const key = pin ? `${name}\n${pin.kind}=${pin.value}` : name;
    let client = this.clients.get(key);
    if (!client) {
      client = this.container.getBlobClient(name);
      if (pin?.kind === 'snapshot') client = client.withSnapshot(pin.value);
      if (pin?.kind === 'version') client = client.withVersion(pin.value);
      this.clients.set(key, client);
    }
    return client;
  }

  private publicUri(name: string, pin?: Pin): string {
    const query = pin?.kind === 'snapshot' ? `?snapshot=${encodeURIComponent(pin.value)}` : '';
    const version = pin?.kind === 'version' ? `?versionid=${encodeURIComponent(pin.value)}` : '';
    return `${this.base}/${encodeBlobName(name)}${query || version}`;
  }

  /** Turns the service's answer into a message that says what to fix. */
  private explain(error: HttpError, blob: string | undefined): Error {
    const where = this.description;
    const byOidc = this.options.auth.kind === 'oidc';
    if (error.status === 404) {
      if (error.code === 'ContainerNotFound') {
        return new ConfigurationError(
          `Container '${this.options.container}' was not found at ${this.options.endpoint.origin}. ` +
            `Check the 'container' input and the storage account.`,
        );
      }
      if (blob !== undefined) {
        return new ConfigurationError(
          `Blob '${blob}' was not found in ${where}. Check the name in 'blobs' (names are ` +
            `case-sensitive) and any version or snapshot pin.`,
        );
      }
      return new ConfigurationError(`${where} was not found (${error.code ?? 'HTTP 404'}).`);
    }
    if (error.status === 403) {
      if (byOidc && error.code !== 'AuthenticationFailed') {
        return new ConfigurationError(
          `The Azure identity of this workflow may not read ${blob ? `blob '${blob}' in ` : ''}` +
            `${where} (${error.code ?? 'HTTP 403'}). Assign it the 'Storage Blob Data Reader' ` +
            `role on the container or the storage account; role assignments take a few ` +
            `minutes to apply.`,
        );
      }
      if (byOidc) {
        return new ConfigurationError(
          `Storage rejected the Entra token for ${where} (${error.code}). Check that ` +
            `'tenant-id' is the storage account's tenant and the 'cloud' input is right.`,
        );
      }
      return new ConfigurationError(
        `Storage rejected the 'sas-token' for ${where} (${error.code ?? 'HTTP 403'}). The SAS ` +
          `must be valid now, signed for this account, and grant read (r)` +
          `${blob === undefined ? ' and list (l)' : ''} permission on the container.`,
      );
    }
    if (error.status === 400 && error.code === 'InvalidQueryParameterValue') {
      return new ConfigurationError(
        `Storage refused a pin for ${blob ? `'${blob}'` : where}: ${error.message}. Check the ` +
          `version id or snapshot time.`,
      );
    }
    return error;
  }
}

/**
 * The SDK's error for an answer (a RestError with a status) as a StorageError built exactly as
 * for a response this project read itself: the service's code from x-ms-error-code or the XML
 * body, its message, and Retry-After. Anything else (a dropped connection, a proxy that
 * refused) is returned as it is.
 */
function sdkError(error: unknown, what: (status: number) => string): unknown {
  if (!isRestError(error) || error.statusCode === undefined || !error.response) return error;
  const { response } = error;
  return answerError(
    {
      status: error.statusCode,
      header: (name) => response.headers.get(name),
      text: response.bodyAsText ?? '',
    },
    what(error.statusCode),
    xmlErrorBody,
    storageError,
  );
}

function base64(bytes: Uint8Array | undefined): string | undefined {
  return bytes && bytes.length > 0 ? Buffer.from(bytes).toString('base64') : undefined;
}

/** Encodes a blob name for a URL path: every segment percent-encoded, slashes kept. */
function encodeBlobName(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}
