import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import { XMLParser } from 'fast-xml-parser';
import type { AwsCredentials } from '../common/aws-credentials';
import { readSource, type BodySource } from '../common/body-source';
import { bulkGet } from '../common/bulk-get';
import { ConfigurationError, quote } from '../common/errors';
import {
  answerError,
  discardBody,
  ConnectionPool,
  readBody,
  send,
  sendWithRetry,
  statusError,
  type HttpResponse,
} from '../common/http';
import { mapLimited } from '../common/limiter';
import type { Logger } from '../common/logger';
import { xmlErrorBody, type HttpError } from '../common/http-error';
import type { RetryPolicy } from '../common/retry';
import { sameEtag, unquoteEtag, type BlobSpec } from './specs';
import { ObjectChangedError, storageError, type ObjectStore, type RemoteObject } from './store';

/** SHA-256 of an empty payload: every request here is a GET or HEAD without a body. */
const EMPTY_SHA256 = 'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855';

export interface S3StoreOptions {
  bucket: string;
  region: string;
  /** An S3-compatible endpoint, addressed path-style; AWS's regional endpoint when unset. */
  endpoint?: URL;
  /** Temporary credentials, asked for before each signature (they are cached and refreshed). */
  credentials: () => Promise<AwsCredentials>;
  /** Names the role in permission errors. */
  roleArn: string;
  /** Connections kept open to the endpoint. */
  maxConnections: number;
  logger: Logger;
  retry?: RetryPolicy;
  /** A socket idle this long counts as a dropped connection. */
  idleTimeoutMs?: number;
}

/**
 * Amazon S3 (or an S3-compatible store) through its REST API, signed with SigV4: HeadObject,
 * ListObjectsV2 and ranged GetObject pinned with If-Match. Requests go through the same
 * keep-alive agent, idle timeouts and retry rules as the Azure store, so the download engine
 * drives both alike.
 */
export class S3Store implements ObjectStore {
  readonly description: string;
  private readonly base: URL;
  private readonly pool: ConnectionPool;
  private readonly signer: SignatureV4;

  constructor(private readonly options: S3StoreOptions) {
    this.base = bucketBase(options.bucket, options.region, options.endpoint);
    this.description = `bucket '${options.bucket}' at ${this.base.origin}`;
    this.pool = new ConnectionPool({ maxSockets: options.maxConnections });
    this.signer = new SignatureV4({
      service: 's3',
      region: options.region,
      credentials: options.credentials,
      sha256: Hash.bind(null, 'sha256'),
      // S3 signs the path as sent, encoded once; other services encode it twice.
      uriEscapePath: false,
      applyChecksum: true,
    });
  }

  async head(spec: BlobSpec): Promise<RemoteObject> {
    if (spec.pin?.kind === 'snapshot') {
      throw new ConfigurationError(`S3 has no snapshots; pin '${spec.name}' with @version=.`);
    }
    const versionId = spec.pin?.kind === 'version' ? spec.pin.value : undefined;
    const query: Record<string, string> = versionId ? { versionId } : {};
    const response = await this.request(
      'HEAD',
      spec.name,
      query,
      { 'x-amz-checksum-mode': 'ENABLED' },
      `Reading properties of '${spec.name}'`,
    );
    if (response.status !== 200) {
      discardBody(response.body);
      throw await this.explainHead(response, spec.name, versionId);
    }
    discardBody(response.body);
    const header = (name: string) => single(response.headers[name]);
    const etag = header('etag') ?? '';
    const object: RemoteObject = {
      name: spec.name,
      size: Number(header('content-length') ?? NaN),
      etag,
      versionId: versionId ?? nullVersion(header('x-amz-version-id')),
      lastModified: header('last-modified'),
      uri: this.publicUri(spec.name, versionId),
      ...storedDigests(etag, response.headers),
    };
    if (!Number.isSafeInteger(object.size) || etag === '') {
      throw new Error(`S3 answered HEAD '${spec.name}' without Content-Length or ETag.`);
    }
    if (spec.pin?.kind === 'etag' && !sameEtag(spec.pin.value, etag)) {
      throw new ConfigurationError(
        `Object '${spec.name}' in ${this.description} no longer has the pinned ETag ` +
          `${quote(spec.pin.value)}; it now has ${etag}. Pin the new ETag, or a version, to ` +
          `choose which content to fetch.`,
      );
    }
    return object;
  }

  /**
   * Every object under `prefix` (ListObjectsV2), each then read with HEAD: a listing carries
   * neither version ids, stored checksums nor the encryption that decides whether an ETag is an
   * MD5, and HEAD pins each file to the exact content about to be downloaded.
   */
  async list(prefix: string): Promise<RemoteObject[]> {
    const parser = new XMLParser({
      ignoreAttributes: true,
      parseTagValue: false,
      isArray: (name) => name === 'Contents',
    });
    const keys: string[] = [];
    let token: string | undefined;
    do {
      const query: Record<string, string> = { 'list-type': '2', prefix, 'encoding-type': 'url' };
      if (token) query['continuation-token'] = token;
      const response = await this.request(
        'GET',
        '',
        query,
        {},
        `Listing objects under '${prefix}'`,
      );
      if (response.status !== 200) {
        throw this.explain(
          await statusError(response, 'ListObjectsV2', xmlErrorBody, storageError),
          {
            action: 's3:ListBucket',
          },
        );
      }
      const xml = (await readBody(response.body, 64 * 1024 * 1024)).toString('utf8');
      const result = parser.parse(xml)?.ListBucketResult ?? {};
      const urlEncoded = String(result.EncodingType ?? '').toLowerCase() === 'url';
      for (const entry of result.Contents ?? []) {
        const raw = String(entry.Key);
        const key = urlEncoded ? decodeURIComponent(raw.replace(/\+/g, ' ')) : raw;
        // Folder markers (what the console's "Create folder" makes) are empty keys ending in '/'.
        if (key.endsWith('/') && Number(entry.Size) === 0) continue;
        keys.push(key);
      }
      token =
        String(result.IsTruncated) === 'true' && result.NextContinuationToken
          ? String(result.NextContinuationToken)
          : undefined;
    } while (token);
    return mapLimited(keys, this.options.maxConnections, (name) => this.head({ name }));
  }

  async openRange(object: RemoteObject, start: number, end: number): Promise<BodySource> {
    // Only an explicit pin reads by version id: that needs s3:GetObjectVersion, which a role
    // that may read the current object (s3:GetObject) often lacks. If-Match pins the content.
    const versionId = new URL(object.uri).searchParams.get('versionId') ?? undefined;
    const signed = await this.sign('GET', object.name, versionId ? { versionId } : {}, {
      range: `bytes=${start}-${end}`,
      'if-match': object.etag,
    });
    const response = await bulkGet({
      ...signed,
      pool: this.pool,
      idleTimeoutMs: this.options.idleTimeoutMs ?? 60_000,
    });
    if (response.status === 412 || response.status === 404) {
      response.body.destroy();
      throw new ObjectChangedError(object);
    }
    if (response.status !== 206 && !(response.status === 200 && start === 0)) {
      let text = '';
      try {
        text = (await readSource(response.body)).toString('utf8');
      } catch {
        // A body we cannot read does not change the status we report.
      }
      const answer = {
        status: response.status,
        header: (name: string) => single(response.headers[name]),
        text,
      };
      throw this.explain(answerError(answer, `GET '${object.name}'`, xmlErrorBody, storageError), {
        action: versionId ? 's3:GetObjectVersion' : 's3:GetObject',
        key: object.name,
      });
    }
    const length = Number(single(response.headers['content-length']));
    if (length !== end - start + 1) {
      response.body.destroy();
      throw new Error(`S3 sent ${length} bytes for range ${start}-${end} of '${object.name}'.`);
    }
    return response.body;
  }

  /** A request with retries for the short metadata calls; ranged reads retry in the engine. */
  private request(
    method: 'GET' | 'HEAD',
    key: string,
    query: Record<string, string>,
    headers: Record<string, string>,
    description: string,
  ): Promise<HttpResponse> {
    return sendWithRetry(() => this.send(method, key, query, headers), description, {
      retry: this.options.retry,
      logger: this.options.logger,
      parse: xmlErrorBody,
      create: storageError,
    });
  }

  private async send(
    method: 'GET' | 'HEAD',
    key: string,
    query: Record<string, string>,
    headers: Record<string, string>,
  ): Promise<HttpResponse> {
    return send({
      method,
      ...(await this.sign(method, key, query, headers)),
      pool: this.pool,
      idleTimeoutMs: this.options.idleTimeoutMs ?? 60_000,
    });
  }

  /** The URL and SigV4-signed headers of a request. */
  private async sign(
    method: 'GET' | 'HEAD',
    key: string,
    query: Record<string, string>,
    headers: Record<string, string>,
  ): Promise<{ url: URL; headers: Record<string, string> }> {
    const path = `${this.base.pathname.replace(/\/+$/, '')}/${encodeKey(key)}`;
    const signed = await this.signer.sign({
      method,
      protocol: this.base.protocol,
      hostname: this.base.hostname,
      port: this.base.port ? Number(this.base.port) : undefined,
      path,
      query,
      headers: { ...headers, host: this.base.host, 'x-amz-content-sha256': EMPTY_SHA256 },
    } as Parameters<SignatureV4['sign']>[0]);
    const search = Object.entries(query)
      .map(([name, value]) => `${strictEncode(name)}=${strictEncode(value)}`)
      .join('&');
    const url = new URL(this.base.origin);
    url.pathname = path;
    url.search = search;
    return { url, headers: signed.headers as Record<string, string> };
  }

  private publicUri(key: string, versionId?: string): string {
    const path = `${this.base.pathname.replace(/\/+$/, '')}/${encodeKey(key)}`;
    const version = versionId ? `?versionId=${strictEncode(versionId)}` : '';
    return `${this.base.origin}${path}${version}`;
  }

  /**
   * HEAD answers errors without a body, so the code that says what went wrong (NoSuchBucket
   * or NoSuchKey, AccessDenied or ExpiredToken) is read from a one-byte GET of the same key.
   */
  private async explainHead(
    head: HttpResponse,
    key: string,
    versionId: string | undefined,
  ): Promise<Error> {
    let error: HttpError;
    const probe = await this.send('GET', key, versionId ? { versionId } : {}, {
      range: 'bytes=0-0',
    });
    if (probe.status === head.status) {
      error = await statusError(probe, `HEAD '${key}'`, xmlErrorBody, storageError);
    } else {
      discardBody(probe.body);
      error = await statusError(head, `HEAD '${key}'`, xmlErrorBody, storageError);
    }
    return this.explain(error, {
      action: versionId ? 's3:GetObjectVersion' : 's3:GetObject',
      key,
      versionId,
      bucketRegion: single(head.headers['x-amz-bucket-region']),
    });
  }

  /** Turns the service's answer into a message that says what to fix. */
  private explain(
    error: HttpError,
    context: { action: string; key?: string; versionId?: string; bucketRegion?: string },
  ): Error {
    const { bucket, region, roleArn } = this.options;
    const { key, action } = context;
    const resource = key === undefined ? `arn:aws:s3:::${bucket}` : `arn:aws:s3:::${bucket}/${key}`;
    if (error.code === 'NoSuchBucket') {
      return new ConfigurationError(
        `Bucket '${bucket}' does not exist at ${this.base.origin}. Check the 'bucket' input ` +
          `(and 'region' or 'endpoint').`,
      );
    }
    if (error.code === 'NoSuchVersion' || (error.status === 400 && context.versionId)) {
      return new ConfigurationError(
        `Version ${quote(context.versionId ?? '')} of '${key}' does not exist in bucket ` +
          `'${bucket}' (${error.code ?? `HTTP ${error.status}`}). Check the @version= pin in ` +
          `'blobs' (aws s3api list-object-versions lists them).`,
      );
    }
    if (error.status === 404) {
      return new ConfigurationError(
        key === undefined
          ? `${this.description} was not found (${error.code ?? 'HTTP 404'}).`
          : `Object '${key}' was not found in bucket '${bucket}'. Check the key in 'blobs' ` +
              `(keys are case-sensitive) and any version pin.`,
      );
    }
    if (error.status === 301 || (context.bucketRegion && context.bucketRegion !== region)) {
      const where = context.bucketRegion ? ` It is in ${context.bucketRegion}.` : '';
      return new ConfigurationError(
        `Bucket '${bucket}' is not in region '${region}'.${where} Set the 'region' input to ` +
          `the bucket's region.`,
      );
    }
    if (error.code === 'AuthorizationHeaderMalformed') {
      return new ConfigurationError(
        `S3 refused the request signature for region '${region}' (${error.code}). Set the ` +
          `'region' input to the bucket's region.`,
      );
    }
    if (
      error.code === 'InvalidAccessKeyId' ||
      error.code === 'SignatureDoesNotMatch' ||
      error.code === 'InvalidToken' ||
      error.code === 'ExpiredToken'
    ) {
      return new ConfigurationError(
        `S3 at ${this.base.origin} rejected the temporary credentials of ${roleArn} ` +
          `(${error.code}). Check that 'endpoint' and 'region' belong to the role's AWS ` +
          `partition and account, and that the clock of the runner is right.`,
      );
    }
    if (error.status === 403) {
      const listHint =
        action === 's3:ListBucket'
          ? ''
          : ` Without s3:ListBucket on arn:aws:s3:::${bucket}, S3 also answers AccessDenied ` +
            `for a key that does not exist: check '${key}' is spelled right.`;
      return new ConfigurationError(
        `Role ${roleArn} may not read ${key === undefined ? `bucket '${bucket}'` : `'s3://${bucket}/${key}'`} ` +
          `(${error.code ?? 'HTTP 403 AccessDenied'}). Its permissions policy must allow ` +
          `${action} on ${action === 's3:ListBucket' ? resource : `arn:aws:s3:::${bucket}/*`} ` +
          `(or that key), and the bucket policy must not deny it; objects encrypted with ` +
          `SSE-KMS also need kms:Decrypt on their key.${listHint}`,
      );
    }
    return error;
  }
}

/**
 * Where the bucket's keys live: `https://<bucket>.s3.<region>.amazonaws.com` for AWS
 * (virtual-hosted style, what AWS recommends; path style for names with dots, which break
 * the wildcard certificate), or `<endpoint>/<bucket>` for an S3-compatible endpoint.
 */
export function bucketBase(bucket: string, region: string, endpoint?: URL): URL {
  if (endpoint) {
    const base = new URL(endpoint.toString());
    base.pathname = `${base.pathname.replace(/\/+$/, '')}/${strictEncode(bucket)}`;
    return base;
  }
  const suffix = region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  if (bucket.includes('.')) return new URL(`https://s3.${region}.${suffix}/${bucket}`);
  return new URL(`https://${bucket}.s3.${region}.${suffix}`);
}

/**
 * The digests S3 vouches for: the ETag is the MD5 of the bytes for a single-part upload that is
 * not encrypted with SSE-KMS or SSE-C (a multipart ETag ends in `-<parts>`); a full-object
 * x-amz-checksum-sha256 is the SHA-256 (a composite one, of a multipart upload, ends in `-<n>`).
 */
export function storedDigests(
  etag: string,
  headers: Record<string, string | string[] | undefined>,
): Pick<RemoteObject, 'contentMd5' | 'md5Source' | 'checksumSha256'> {
  const result: Pick<RemoteObject, 'contentMd5' | 'md5Source' | 'checksumSha256'> = {};
  const encryption = single(headers['x-amz-server-side-encryption']) ?? '';
  const customerKey = single(headers['x-amz-server-side-encryption-customer-algorithm']);
  const hex = unquoteEtag(etag);
  if (/^[0-9a-f]{32}$/i.test(hex) && !encryption.startsWith('aws:kms') && !customerKey) {
    result.contentMd5 = Buffer.from(hex, 'hex').toString('base64');
    result.md5Source = 'ETag (MD5)';
  }
  const sha256 = single(headers['x-amz-checksum-sha256']);
  const type = single(headers['x-amz-checksum-type']);
  if (sha256 && /^[A-Za-z0-9+/]{43}=$/.test(sha256) && type !== 'COMPOSITE') {
    result.checksumSha256 = sha256;
  }
  return result;
}

/** Percent-encodes everything but RFC 3986's unreserved characters, as SigV4 requires. */
export function strictEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** Encodes a key for a URL path: every segment strictly encoded, slashes kept. */
export function encodeKey(key: string): string {
  return key.split('/').map(strictEncode).join('/');
}

/** S3 reports `null` as the version of objects written before versioning was enabled. */
function nullVersion(value: string | undefined): string | undefined {
  return value && value !== 'null' ? value : undefined;
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}
