import { createHash, type Hash } from 'node:crypto';
import { ConfigurationError, errorMessage, quote } from '../../common/errors';
import { HttpError } from '../../common/http-error';
import {
  discardBody,
  header,
  readBody,
  send,
  sharedPool,
  statusError,
  type HttpRequest,
  type HttpResponse,
  type RequestBody,
} from '../../common/http';
import type { Logger } from '../../common/logger';
import {
  backoffDelay,
  sleep,
  DEFAULT_RETRY,
  isTransient,
  withRetry,
  type RetryPolicy,
} from '../../common/retry';
import { parseChallenge, type Challenge } from './challenge';
import { registryError, registryErrorBody, type RegistryCredentials } from './credentials';

export const MANIFEST_TYPES = {
  ociManifest: 'application/vnd.oci.image.manifest.v1+json',
  ociIndex: 'application/vnd.oci.image.index.v1+json',
  dockerManifest: 'application/vnd.docker.distribution.manifest.v2+json',
  dockerList: 'application/vnd.docker.distribution.manifest.list.v2+json',
} as const;
const ACCEPT_MANIFESTS = Object.values(MANIFEST_TYPES).join(', ');
/**
 * Bytes per upload request (the `chunk-size` input's default). Each PATCH waits for the
 * registry's 202 before the next starts, so fewer, larger chunks drain the pipe less often.
 */
export const DEFAULT_CHUNK_SIZE = 256 * 1024 * 1024;
/** Times a blob upload may start again from byte 0 after the registry dropped its session. */
const MAX_RESTARTS = 5;
/** Redirect hops a blob read may take (ACR sends blob GETs and HEADs to its data endpoint). */
const MAX_REDIRECTS = 5;
/** A socket idle this long fails a registry request (transient: it is retried). */
const IDLE_TIMEOUT_MS = 120_000;

/** A blob's bytes that can be read again from any offset (an upload resumes mid-blob). */
export interface BlobSource {
  size: number;
  read(start: number, end: number): AsyncIterable<Buffer>;
}

export interface FetchedManifest {
  digest: string;
  mediaType: string;
  body: Buffer;
}

export interface UploadResult {
  digest: string;
  size: number;
  /** Bytes sent, resent bytes included. */
  bytesSent: number;
  /** Times the upload continued after a failure. */
  resumes: number;
}

export interface RegistryClientOptions {
  registry: string;
  credentials: RegistryCredentials;
  logger: Logger;
  /** Every scope the run needs, asked for in one token (push to the target, pull the base). */
  scopes: string[];
  chunkSize?: number;
  retry?: RetryPolicy;
}

/**
 * The OCI distribution API over HTTPS, authenticated by following the registry's
 * WWW-Authenticate challenge. Transient failures (5xx, 429, resets) are retried with backoff;
 * a 401 on a request that carried a token renews the token once.
 */
export class RegistryClient {
  readonly base: URL;
  private challenge?: Challenge;
  private authorization?: string;
  private readonly retry: RetryPolicy;
  readonly chunkSize: number;
  /** Blob and manifest bytes sent, resent bytes included. */
  bytesSent = 0;

  constructor(private readonly options: RegistryClientOptions) {
    this.base = new URL(`https://${options.registry}`);
    this.retry = options.retry ?? DEFAULT_RETRY;
    this.chunkSize = options.chunkSize ?? DEFAULT_CHUNK_SIZE;
  }

  get registry(): string {
    return this.options.registry;
  }

  /** GET /v2/: checks that the registry answers and learns its challenge. */
  async ping(): Promise<Challenge | undefined> {
    const response = await this.send({ method: 'GET', path: '/v2/', expect: [200] });
    discardBody(response.body);
    return this.challenge;
  }

  /** The user name and password for `docker login`, from the same credentials. */
  async dockerLogin(): Promise<{ username: string; password: string }> {
    const challenge = (await this.ping()) ?? { scheme: 'basic' as const };
    return this.options.credentials.dockerLogin(challenge, this.options.registry);
  }

  async getManifest(repository: string, reference: string): Promise<FetchedManifest | undefined> {
    const response = await this.send({
      method: 'GET',
      path: `/v2/${repository}/manifests/${reference}`,
      headers: { accept: ACCEPT_MANIFESTS },
      expect: [200, 404],
    });
    if (response.status === 404) {
      discardBody(response.body);
      return undefined;
    }
    const body = await readBody(response.body, 8 * 1024 * 1024);
    const digest = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (reference.startsWith('sha256:') && digest !== reference) {
      throw new Error(`manifest ${repository}@${reference} arrived with digest ${digest}`);
    }
    const declared = (JSON.parse(body.toString('utf8')) as { mediaType?: string }).mediaType;
    const mediaType = (header(response, 'content-type') ?? declared ?? '').split(';')[0].trim();
    return { digest, mediaType: declared ?? mediaType, body };
  }

  /** A small blob (an image config), verified against its digest. */
  async getBlob(repository: string, digest: string): Promise<Buffer> {
    const response = await this.send({
      method: 'GET',
      path: `/v2/${repository}/blobs/${digest}`,
      expect: [200],
      followRedirects: true,
    });
    const body = await readBody(response.body, 32 * 1024 * 1024);
    const actual = `sha256:${createHash('sha256').update(body).digest('hex')}`;
    if (actual !== digest) throw new Error(`blob ${digest} arrived with digest ${actual}`);
    return body;
  }

  async hasBlob(repository: string, digest: string): Promise<boolean> {
    const response = await this.send({
      method: 'HEAD',
      path: `/v2/${repository}/blobs/${digest}`,
      expect: [200, 404],
      followRedirects: true,
    });
    discardBody(response.body);
    return response.status === 200;
  }

  /** Asks the registry to link a blob from another repository; false when it would not. */
  async mountBlob(repository: string, digest: string, from: string): Promise<boolean> {
    const query = new URLSearchParams({ mount: digest, from });
    const response = await this.send({
      method: 'POST',
      path: `/v2/${repository}/blobs/uploads/?${query}`,
      headers: { 'content-length': '0' },
      expect: [201, 202],
    });
    discardBody(response.body);
    if (response.status === 201) return true;
    // 202: the registry opened an upload session instead; close it, the caller uploads.
    const location = header(response, 'location');
    if (location) {
      await this.send({ method: 'DELETE', url: this.resolve(location), expect: [204, 404] })
        .then((answer) => discardBody(answer.body))
        .catch(() => undefined);
    }
    return false;
  }

  /**
   * Uploads a blob in chunks (POST, PATCH per chunk, PUT ?digest=), hashing the bytes as they
   * are sent. After a failed chunk it asks the registry how much it holds (GET on the upload
   * URL) and continues from there; when the registry has dropped the session, it starts again.
   */
  async uploadBlob(
    repository: string,
    source: BlobSource,
    expectedDigest?: string,
  ): Promise<UploadResult> {
    let location = await this.startUpload(repository);
    let offset = 0;
    let hash: Hash = createHash('sha256');
    let bytesSent = 0;
    let resumes = 0;
    let failures = 0;
    let restarts = 0;
    while (offset < source.size) {
      const start = offset;
      const end = Math.min(source.size, start + this.chunkSize);
      const atStart = hash.copy();
      try {
        const response = await this.send(
          {
            method: 'PATCH',
            url: location,
            headers: {
              'content-type': 'application/octet-stream',
              'content-length': String(end - start),
              'content-range': `${start}-${end - 1}`,
            },
            body: () => {
              hash = atStart.copy();
              return counted(source.read(start, end), (chunk) => {
                hash.update(chunk);
                bytesSent += chunk.length;
                this.bytesSent += chunk.length;
              });
            },
            expect: [202],
          },
          false,
        );
        discardBody(response.body);
        location = this.resolve(header(response, 'location') ?? location.toString());
        offset = end;
        failures = 0;
      } catch (error) {
        if (!isTransient(error) || ++failures >= this.retry.maxAttempts) throw error;
        resumes++;
        hash = atStart;
        const retryAfter = error instanceof HttpError ? error.retryAfterMs : undefined;
        await sleep(backoffDelay(failures - 1, this.retry, retryAfter));
        const status = await this.uploadStatus(location);
        if ('received' in status && status.received >= start && status.received <= end) {
          // The registry kept all or part of the chunk: hash those bytes again, send the rest.
          for await (const chunk of source.read(start, status.received)) hash.update(chunk);
          this.options.logger.info(
            `  upload interrupted (${errorMessage(error)}); resuming at byte ${status.received}`,
          );
          offset = status.received;
          location = status.location;
        } else {
          if (++restarts > MAX_RESTARTS) throw error;
          // Distribution, for one, invalidates a session that received part of a chunk.
          this.options.logger.info(
            `  upload interrupted (${errorMessage(error)}) and the registry no longer has the ` +
              `session (${'reason' in status ? status.reason : `it holds ${status.received} bytes`}); starting this blob again`,
          );
          location = await this.startUpload(repository);
          hash = createHash('sha256');
          offset = 0;
        }
      }
    }
    const digest = `sha256:${hash.digest('hex')}`;
    if (expectedDigest && digest !== expectedDigest) {
      throw new Error(`blob changed while uploading: expected ${expectedDigest}, read ${digest}`);
    }
    const finish = new URL(location);
    finish.searchParams.set('digest', digest);
    await this.finishUpload(repository, finish, digest);
    return { digest, size: source.size, bytesSent, resumes };
  }

  /** Uploads a small blob (a config) in one request. */
  async uploadSmallBlob(repository: string, data: Buffer): Promise<string> {
    const digest = `sha256:${createHash('sha256').update(data).digest('hex')}`;
    const location = await this.startUpload(repository);
    location.searchParams.set('digest', digest);
    await this.finishUpload(repository, location, digest, data);
    this.bytesSent += data.length;
    return digest;
  }

  /**
   * The closing PUT of an upload. Its answer may be lost after the registry completed it, and
   * a retry then finds no session: a blob that is there by then counts as uploaded.
   */
  private async finishUpload(
    repository: string,
    url: URL,
    digest: string,
    data?: Buffer,
  ): Promise<void> {
    try {
      const response = await this.send({
        method: 'PUT',
        url,
        headers: data
          ? { 'content-type': 'application/octet-stream', 'content-length': String(data.length) }
          : { 'content-length': '0' },
        body: data,
        expect: [201],
      });
      discardBody(response.body);
    } catch (error) {
      if (!(await this.hasBlob(repository, digest).catch(() => false))) throw error;
      this.options.logger.info(
        `  ${digest.slice(0, 19)}: the registry completed the upload whose answer was lost`,
      );
    }
  }

  async putManifest(
    repository: string,
    reference: string,
    mediaType: string,
    body: Buffer,
  ): Promise<string> {
    const response = await this.send({
      method: 'PUT',
      path: `/v2/${repository}/manifests/${reference}`,
      headers: { 'content-type': mediaType, 'content-length': String(body.length) },
      body,
      expect: [201],
    });
    this.bytesSent += body.length;
    discardBody(response.body);
    return (
      header(response, 'docker-content-digest') ??
      `sha256:${createHash('sha256').update(body).digest('hex')}`
    );
  }

  /** Every tag of a repository (following Link pagination); none when it does not exist. */
  async listTags(repository: string): Promise<string[]> {
    const tags: string[] = [];
    let next: URL | undefined = this.resolve(`/v2/${repository}/tags/list?n=1000`);
    while (next) {
      const response: HttpResponse = await this.send({
        method: 'GET',
        url: next,
        expect: [200, 404],
      });
      if (response.status === 404) {
        discardBody(response.body);
        return tags;
      }
      const body = JSON.parse((await readBody(response.body)).toString('utf8')) as {
        tags?: string[] | null;
      };
      tags.push(...(body.tags ?? []));
      const link = /<([^>]+)>\s*;\s*rel="?next"?/.exec(header(response, 'link') ?? '');
      next = link ? this.resolve(link[1]) : undefined;
    }
    return tags;
  }

  private async startUpload(repository: string): Promise<URL> {
    const response = await this.send({
      method: 'POST',
      path: `/v2/${repository}/blobs/uploads/`,
      headers: { 'content-length': '0' },
      expect: [202],
    });
    discardBody(response.body);
    const location = header(response, 'location');
    if (!location) throw new Error('the registry opened an upload without a Location');
    return this.resolve(location);
  }

  /** GET on an upload URL: how many bytes the registry holds, or why it has no session. */
  private async uploadStatus(
    location: URL,
  ): Promise<{ received: number; location: URL } | { reason: string }> {
    try {
      const response = await this.send({ method: 'GET', url: location, expect: [204] });
      discardBody(response.body);
      const range = /^(?:bytes=)?0-(\d+)$/.exec(header(response, 'range') ?? '');
      const received = range ? Number(range[1]) + 1 : 0;
      return {
        received,
        location: this.resolve(header(response, 'location') ?? location.toString()),
      };
    } catch (error) {
      if (error instanceof ConfigurationError) throw error;
      return { reason: errorMessage(error) };
    }
  }

  resolve(location: string): URL {
    return new URL(location, this.base);
  }

  /**
   * Sends a request with authentication: on 401 it answers the challenge (renewing once if a
   * token was already sent) and sends again. With `retry`, transient failures are retried. The
   * registry token goes only to the registry's own origin: an absolute Location or Link on
   * another host, and any redirect hop that leaves the origin, gets none.
   */
  private async send(
    request: {
      method: HttpRequest['method'];
      path?: string;
      url?: URL;
      headers?: Record<string, string>;
      body?: RequestBody;
      expect: number[];
      followRedirects?: boolean;
    },
    retry = true,
  ): Promise<HttpResponse> {
    const url = request.url ?? this.resolve(request.path!);
    const ownOrigin = url.origin === this.base.origin;
    const attempt = async (): Promise<HttpResponse> => {
      let renewed = false;
      for (;;) {
        const sentAuthorization = ownOrigin ? this.authorization : undefined;
        let response: HttpResponse;
        try {
          response = await send({
            method: request.method,
            url,
            headers: {
              'user-agent': 'ai-app-delivery-actions/build-push',
              ...request.headers,
              ...(sentAuthorization ? { authorization: sentAuthorization } : {}),
            },
            body: request.body,
            pool: sharedPool(8),
            idleTimeoutMs: IDLE_TIMEOUT_MS,
            maxRedirects: request.followRedirects ? MAX_REDIRECTS : 0,
          });
        } catch (error) {
          throw unreachable(error, this.options.registry);
        }
        const answeredByRegistry = response.url.origin === this.base.origin;
        if (
          response.status === 401 &&
          ownOrigin &&
          answeredByRegistry &&
          (!sentAuthorization || !renewed)
        ) {
          const challenge = parseChallenge(header(response, 'www-authenticate'));
          discardBody(response.body);
          if (!challenge) throw await this.authError(response, request.method, url);
          if (sentAuthorization) {
            this.options.credentials.renew();
            renewed = true;
            this.options.logger.info('  the registry answered 401; renewing the token once');
          }
          this.challenge = challenge;
          this.authorization = await this.options.credentials.authorization(
            challenge,
            this.options.scopes,
            this.options.registry,
          );
          continue;
        }
        if (request.expect.includes(response.status)) return response;
        if ((response.status === 401 || response.status === 403) && answeredByRegistry) {
          throw await this.authError(response, request.method, url);
        }
        const where = answeredByRegistry
          ? url.pathname
          : `${url.pathname} (redirected to ${response.url.host})`;
        throw await statusError(
          response,
          `${request.method} ${where}`,
          registryErrorBody,
          registryError,
        );
      }
    };
    if (!retry) return attempt();
    return withRetry(attempt, {
      description: `${request.method} ${url.pathname}`,
      logger: this.options.logger,
      policy: this.retry,
    });
  }

  private async authError(
    response: HttpResponse,
    method: string,
    url: URL,
  ): Promise<ConfigurationError> {
    const text = (await readBody(response.body, 64 * 1024).catch(() => Buffer.alloc(0))).toString(
      'utf8',
    );
    const service = text ? registryErrorBody(text) : {};
    const detail = service.message
      ? `${service.code ? `${service.code} ` : ''}${service.message}`
      : '';
    return new ConfigurationError(
      `Registry ${quote(this.options.registry)} refused ${method} ${url.pathname} ` +
        `(HTTP ${response.status}${detail ? `: ${detail}` : ''}) with ` +
        `${this.options.credentials.description}. The identity needs the AcrPush role on the ` +
        `registry to push (AcrPull to read a base image), or, outside ACR, a user allowed to ` +
        `push to ${this.options.scopes.map((scope) => scope.split(':')[1]).join(' and ')}.`,
    );
  }
}

function unreachable(error: unknown, registry: string): unknown {
  const code = (error as NodeJS.ErrnoException)?.code;
  if (code === 'ENOTFOUND' || code === 'EAI_AGAIN' || code === 'ECONNREFUSED') {
    const wrapped: NodeJS.ErrnoException = new Error(
      `Cannot reach registry ${quote(registry)}: ${code} (${errorMessage(error)}). Check the ` +
        `'registry' input and that this runner can reach it.`,
    );
    wrapped.code = code;
    return wrapped;
  }
  return error;
}

async function* counted(
  source: AsyncIterable<Buffer>,
  observe: (chunk: Buffer) => void,
): AsyncGenerator<Buffer> {
  for await (const chunk of source) {
    observe(chunk);
    yield chunk;
  }
}
