import type { Readable } from 'node:stream';
import { XMLParser } from 'fast-xml-parser';
import type { TokenSource } from '../common/credential';
import { STORAGE_SCOPE } from '../common/clouds';
import { ConfigurationError, quote } from '../common/errors';
import {
  discardBody,
  ConnectionPool,
  readBody,
  send,
  sendWithRetry,
  statusError,
  type HttpResponse,
} from '../common/http';
import type { Logger } from '../common/logger';
import { xmlErrorBody, type HttpError } from '../common/http-error';
import type { RetryPolicy } from '../common/retry';
import { quoteEtag, sameEtag, type BlobSpec } from './specs';
import { ObjectChangedError, storageError, type ObjectStore, type RemoteObject } from './store';

/** The REST API version sent with every request (bearer tokens need 2017-11-09 or later). */
export const STORAGE_API_VERSION = '2023-11-03';

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
  /** A socket idle this long counts as a dropped connection. */
  idleTimeoutMs?: number;
}

/** Azure Blob Storage through its REST API: Get Blob Properties, List Blobs, ranged Get Blob. */
export class AzureBlobStore implements ObjectStore {
  readonly description: string;
  private readonly pool: ConnectionPool;
  private readonly base: string;

  constructor(private readonly options: AzureBlobStoreOptions) {
    const endpoint = options.endpoint.toString().replace(/\/+$/, '');
    this.base = `${endpoint}/${options.container}`;
    this.description = `container '${options.container}' at ${endpoint}`;
    this.pool = new ConnectionPool({ maxSockets: options.maxConnections });
  }

  async head(spec: BlobSpec): Promise<RemoteObject> {
    const url = this.blobUrl(spec.name, spec.pin?.kind === 'etag' ? undefined : spec.pin);
    const response = await this.request('HEAD', url, {}, `Reading properties of '${spec.name}'`);
    if (response.status !== 200) {
      throw this.explain(
        await statusError(response, `HEAD '${spec.name}'`, xmlErrorBody, storageError),
        spec.name,
      );
    }
    discardBody(response.body);
    const header = (name: string) => single(response.headers[name]);
    const object: RemoteObject = {
      name: spec.name,
      size: Number(header('content-length') ?? NaN),
      etag: header('etag') ?? '',
      versionId: spec.pin?.kind === 'version' ? spec.pin.value : header('x-ms-version-id'),
      snapshot: spec.pin?.kind === 'snapshot' ? spec.pin.value : undefined,
      lastModified: header('last-modified'),
      contentMd5: header('content-md5'),
      uri: this.publicUri(spec.name, spec.pin?.kind === 'etag' ? undefined : spec.pin),
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
    const parser = new XMLParser({
      ignoreAttributes: true,
      parseTagValue: false,
      isArray: (name) => name === 'Blob',
    });
    let marker: string | undefined;
    do {
      const query = new URLSearchParams({ restype: 'container', comp: 'list', prefix });
      if (marker) query.set('marker', marker);
      const url = `${this.base}?${this.withSas(query.toString())}`;
      const response = await this.request('GET', url, {}, `Listing blobs under '${prefix}'`);
      if (response.status !== 200) {
        throw this.explain(
          await statusError(response, `List blobs`, xmlErrorBody, storageError),
          undefined,
        );
      }
      const xml = (await readBody(response.body, 64 * 1024 * 1024)).toString('utf8');
      const result = parser.parse(xml)?.EnumerationResults ?? {};
      for (const blob of result.Blobs?.Blob ?? []) {
        const properties = blob.Properties ?? {};
        const name = String(blob.Name);
        const object: RemoteObject = {
          name,
          size: Number(properties['Content-Length']),
          etag: quoteEtag(String(properties.Etag ?? '')),
          versionId: blob.VersionId ? String(blob.VersionId) : undefined,
          lastModified: properties['Last-Modified']
            ? String(properties['Last-Modified'])
            : undefined,
          contentMd5: properties['Content-MD5'] ? String(properties['Content-MD5']) : undefined,
          uri: this.publicUri(name),
        };
        // Folder markers of hierarchical accounts are empty blobs named like a directory.
        if (name.endsWith('/') && object.size === 0) continue;
        objects.push(object);
      }
      marker = result.NextMarker ? String(result.NextMarker) : undefined;
    } while (marker);
    return objects;
  }

  async openRange(object: RemoteObject, start: number, end: number): Promise<Readable> {
    const pin = object.snapshot
      ? ({ kind: 'snapshot', value: object.snapshot } as const)
      : object.versionId
        ? ({ kind: 'version', value: object.versionId } as const)
        : undefined;
    // A version or snapshot never changes, but If-Match is sent anyway: it is what detects an
    // unpinned blob overwritten mid-download, and it costs nothing on pinned ones.
    const url = this.blobUrl(object.name, pin);
    const response = await this.send('GET', url, {
      'x-ms-range': `bytes=${start}-${end}`,
      'If-Match': object.etag,
    });
    if (response.status === 412 || response.status === 404) {
      discardBody(response.body);
      throw new ObjectChangedError(object);
    }
    if (response.status !== 206 && !(response.status === 200 && start === 0)) {
      throw this.explain(
        await statusError(response, `GET '${object.name}'`, xmlErrorBody, storageError),
        object.name,
      );
    }
    const length = Number(single(response.headers['content-length']));
    if (length !== end - start + 1) {
      response.body.destroy();
      throw new Error(
        `Storage sent ${length} bytes for range ${start}-${end} of '${object.name}'.`,
      );
    }
    return response.body;
  }

  /** A request with retries for the short metadata calls; ranged reads retry in the engine. */
  private request(
    method: 'GET' | 'HEAD',
    url: string,
    headers: Record<string, string>,
    description: string,
  ): Promise<HttpResponse> {
    return sendWithRetry(() => this.send(method, url, headers), description, {
      retry: this.options.retry,
      logger: this.options.logger,
      parse: xmlErrorBody,
      create: storageError,
    });
  }

  private async send(
    method: 'GET' | 'HEAD',
    url: string,
    headers: Record<string, string>,
  ): Promise<HttpResponse> {
    const all: Record<string, string> = { 'x-ms-version': STORAGE_API_VERSION, ...headers };
    if (this.options.auth.kind === 'oidc') {
      all.Authorization = `Bearer ${await this.options.auth.tokens.get(STORAGE_SCOPE)}`;
    }
    return send({
      method,
      url: new URL(url),
      headers: all,
      pool: this.pool,
      idleTimeoutMs: this.options.idleTimeoutMs ?? 60_000,
      carriesCredential: this.options.auth.kind === 'sas',
    });
  }

  private blobUrl(name: string, pin?: BlobSpec['pin']): string {
    const query = new URLSearchParams();
    if (pin?.kind === 'snapshot') query.set('snapshot', pin.value);
    if (pin?.kind === 'version') query.set('versionid', pin.value);
    const search = this.withSas(query.toString());
    return `${this.base}/${encodeBlobName(name)}${search ? `?${search}` : ''}`;
  }

  /** Appends the SAS, when requests are authorized by one, to a query string. */
  private withSas(search: string): string {
    if (this.options.auth.kind !== 'sas') return search;
    return search ? `${search}&${this.options.auth.query}` : this.options.auth.query;
  }

  private publicUri(name: string, pin?: BlobSpec['pin']): string {
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

/** Encodes a blob name for a URL path: every segment percent-encoded, slashes kept. */
export function encodeBlobName(name: string): string {
  return name.split('/').map(encodeURIComponent).join('/');
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

/** `https://<account>.blob.<suffix>` for an account name, checked against Azure's rules. */
export function accountEndpoint(account: string, storageSuffix: string): URL {
  if (!/^[a-z0-9]{3,24}$/.test(account)) {
    throw new ConfigurationError(
      `Invalid storage-account ${quote(account)}. Expected the account name: 3 to 24 lowercase ` +
        `letters and digits (not a URL; use 'blob-endpoint' for a full URL).`,
    );
  }
  return new URL(`https://${account}.blob.${storageSuffix}`);
}
