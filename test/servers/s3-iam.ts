import { createHash, createHmac, randomUUID, timingSafeEqual } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { escapeXml, type IssuedCredentials } from './sts';
import { closeServer, listenOnLoopback } from '../support/ports';

/** One request as the gateway judged it. */
export interface JudgedRequest {
  method: string;
  /** The Host header: `<bucket>.s3.<region>.amazonaws.com` for a virtual-hosted-style request. */
  host: string;
  bucket: string;
  /** The path as sent (without the bucket in virtual-hosted style). */
  path: string;
  query: URLSearchParams;
  action: string;
  accessKeyId?: string;
  /** The S3 error code answered, or undefined when the request went through. */
  denied?: string;
}

/**
 * The part of S3 that the S3-compatible server under it (fauxqs) does not do: authentication
 * and IAM authorization. It checks every request's SigV4 signature (computed here, on its own,
 * from AWS's documented canonical request), that the access key is one STS issued, that the
 * session token matches and has not expired, and that the assumed role's permissions allow the
 * action (s3:GetObject, s3:GetObjectVersion for a versionId, s3:ListBucket); then forwards to
 * the real server. Answers are S3's: AccessDenied (with S3's message naming principal, action
 * and resource), InvalidAccessKeyId, SignatureDoesNotMatch, InvalidToken, ExpiredToken; a
 * missing key is AccessDenied unless the role may list the bucket, as on S3. Buckets are
 * addressed path-style (`/<bucket>/<key>`, as S3-compatible endpoints are) or, as AWS's own
 * endpoints address them, virtual-hosted-style: the bucket is the Host's first labels
 * (`<bucket>.s3.<region>.amazonaws.com`) and the path is the key.
 */
export class S3IamGateway {
  readonly requests: JudgedRequest[] = [];
  private readonly credentials = new Map<string, IssuedCredentials>();
  private server?: https.Server;
  private port = 0;
  private readonly agent = new http.Agent({ keepAlive: true, maxSockets: 64 });

  constructor(
    private readonly upstream: URL,
    private readonly options: { region: string; tls: { key: string; cert: string } },
  ) {}

  /** The endpoint the action is given (path-style, https). */
  get endpoint(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  get listenPort(): number {
    return this.port;
  }

  /** Accepts requests signed with these credentials from now on (STS calls this). */
  accept(credentials: IssuedCredentials): void {
    this.credentials.set(credentials.accessKeyId, credentials);
  }

  async start(): Promise<this> {
    this.server = https.createServer(this.options.tls, (req, res) => this.handle(req, res));
    this.port = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    this.agent.destroy();
    await closeServer(this.server);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    const url = new URL(req.url ?? '/', 'https://127.0.0.1');
    const host = (req.headers.host ?? '').toLowerCase();
    const { bucket, key, upstreamPath } = this.locate(host, req.url ?? '/', url);
    const action =
      key === ''
        ? 's3:ListBucket'
        : url.searchParams.has('versionId')
          ? 's3:GetObjectVersion'
          : 's3:GetObject';
    const judged: JudgedRequest = {
      method: req.method ?? 'GET',
      host,
      bucket,
      path: url.pathname,
      query: url.searchParams,
      action,
    };
    this.requests.push(judged);
    const deny = (status: number, code: string, message: string) => {
      judged.denied = code;
      req.resume();
      s3Error(res, req.method === 'HEAD', status, code, message);
    };
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      return deny(405, 'MethodNotAllowed', 'This gateway serves reads only.');
    }
    const auth = this.authenticate(req, url);
    if ('error' in auth) return deny(auth.status, auth.error, auth.message);
    judged.accessKeyId = auth.credentials.accessKeyId;
    const { role, assumedRoleArn } = auth.credentials;
    const resource = key === '' ? `arn:aws:s3:::${bucket}` : `arn:aws:s3:::${bucket}/${key}`;
    if (!role.allow.includes(action)) {
      return deny(
        403,
        'AccessDenied',
        `User: ${assumedRoleArn} is not authorized to perform: ${action} on resource: ` +
          `"${resource}" because no identity-based policy allows the ${action} action`,
      );
    }
    const mayList = role.allow.includes('s3:ListBucket');
    this.forward(req, res, upstreamPath, (status) => {
      // Without s3:ListBucket, S3 does not reveal whether a key exists.
      if (status === 404 && key !== '' && !mayList) {
        judged.denied = 'AccessDenied';
        return 'AccessDenied';
      }
      return undefined;
    });
  }

  /**
   * The bucket and key a request names, and the path-style path the server under the gateway
   * takes: from the Host for `<bucket>.s3.<region>.amazonaws.com`, from the path otherwise.
   */
  private locate(
    host: string,
    rawUrl: string,
    url: URL,
  ): { bucket: string; key: string; upstreamPath: string } {
    const virtualHost = new RegExp(`^(.+)\\.s3\\.${this.options.region}\\.amazonaws\\.com$`).exec(
      host.replace(/:443$/, ''),
    );
    if (!virtualHost) {
      const [, bucket = '', ...rest] = url.pathname.split('/');
      return { bucket, key: rest.map(decodeURIComponent).join('/'), upstreamPath: rawUrl };
    }
    const bucket = virtualHost[1];
    const at = rawUrl.indexOf('?');
    const rawPath = at < 0 ? rawUrl : rawUrl.slice(0, at);
    const query = at < 0 ? '' : rawUrl.slice(at);
    const key = rawPath.slice(1).split('/').map(decodeURIComponent).join('/');
    return {
      bucket,
      key,
      upstreamPath: `/${bucket}${rawPath === '/' ? '' : rawPath}${query}`,
    };
  }

  private authenticate(
    req: http.IncomingMessage,
    url: URL,
  ): { credentials: IssuedCredentials } | { error: string; status: number; message: string } {
    const header = req.headers.authorization ?? '';
    const match =
      /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(
        header,
      );
    if (!match) {
      return { error: 'AccessDenied', status: 403, message: 'Access Denied' };
    }
    const [, accessKeyId, date, region, signedHeaderList, signature] = match;
    const credentials = this.credentials.get(accessKeyId);
    if (!credentials) {
      return {
        error: 'InvalidAccessKeyId',
        status: 403,
        message: 'The AWS Access Key Id you provided does not exist in our records.',
      };
    }
    if (region !== this.options.region) {
      return {
        error: 'AuthorizationHeaderMalformed',
        status: 400,
        message: `The authorization header is malformed; the region '${region}' is wrong; expecting '${this.options.region}'`,
      };
    }
    const token = req.headers['x-amz-security-token'];
    if (token !== credentials.sessionToken) {
      return {
        error: 'InvalidToken',
        status: 400,
        message: 'The provided token is malformed or otherwise invalid.',
      };
    }
    if (credentials.expiration.getTime() <= Date.now()) {
      return { error: 'ExpiredToken', status: 400, message: 'The provided token has expired.' };
    }
    const payloadHash = req.headers['x-amz-content-sha256'];
    if (typeof payloadHash !== 'string') {
      return {
        error: 'InvalidRequest',
        status: 400,
        message: 'Missing required header for this request: x-amz-content-sha256',
      };
    }
    const amzDate = String(req.headers['x-amz-date'] ?? '');
    const signedHeaders = signedHeaderList.split(';');
    if (
      !amzDate.startsWith(date) ||
      !signedHeaders.includes('host') ||
      !signedHeaders.includes('x-amz-date') ||
      Math.abs(Date.parse(isoOf(amzDate)) - Date.now()) > 15 * 60_000
    ) {
      return {
        error: 'AccessDenied',
        status: 403,
        message: 'Request has expired or its date is not signed.',
      };
    }
    const canonicalRequest = [
      req.method,
      canonicalPath(url.pathname),
      canonicalQuery(req.url ?? ''),
      signedHeaders.map((name) => `${name}:${headerValue(req, name)}\n`).join(''),
      signedHeaderList,
      payloadHash,
    ].join('\n');
    const scope = `${date}/${region}/s3/aws4_request`;
    const stringToSign = [
      'AWS4-HMAC-SHA256',
      amzDate,
      scope,
      createHash('sha256').update(canonicalRequest).digest('hex'),
    ].join('\n');
    let key = hmac(`AWS4${credentials.secretAccessKey}`, date);
    for (const part of [region, 's3', 'aws4_request']) key = hmac(key, part);
    const expected = createHmac('sha256', key).update(stringToSign).digest();
    if (!timingSafeEqual(expected, Buffer.from(signature, 'hex'))) {
      return {
        error: 'SignatureDoesNotMatch',
        status: 403,
        message:
          'The request signature we calculated does not match the signature you provided. ' +
          'Check your key and signing method.',
      };
    }
    return { credentials };
  }

  /** Streams the request (path-style) to the real server and its answer back; `override` may deny a 404. */
  private forward(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    path: string,
    override: (status: number) => string | undefined,
  ): void {
    const upstream = http.request(
      {
        host: this.upstream.hostname,
        port: this.upstream.port,
        method: req.method,
        path,
        headers: { ...req.headers, host: this.upstream.host },
        agent: this.agent,
      },
      (answer) => {
        const code = override(answer.statusCode ?? 502);
        if (code) {
          answer.resume();
          return s3Error(res, req.method === 'HEAD', 403, code, 'Access Denied');
        }
        res.writeHead(answer.statusCode ?? 502, answer.headers);
        answer.pipe(res);
      },
    );
    upstream.on('error', () => res.socket?.destroy());
    res.on('close', () => upstream.destroy());
    req.pipe(upstream);
  }
}

function hmac(key: string | Buffer, data: string): Buffer {
  return createHmac('sha256', key).update(data).digest();
}

/** `20240501T102030Z` as an ISO date. */
function isoOf(amzDate: string): string {
  const m = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(amzDate);
  return m ? `${m[1]}-${m[2]}-${m[3]}T${m[4]}:${m[5]}:${m[6]}Z` : 'invalid';
}

/** RFC 3986 encoding, as SigV4 canonical requests use. */
function uriEncode(value: string): string {
  return encodeURIComponent(value).replace(
    /[!'()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
}

/** S3's canonical URI: each segment decoded, then encoded once (no normalisation). */
function canonicalPath(pathname: string): string {
  return pathname
    .split('/')
    .map((segment) => uriEncode(decodeURIComponent(segment)))
    .join('/');
}

/** Parameters decoded, encoded again, sorted by name then value. */
function canonicalQuery(rawUrl: string): string {
  const search = rawUrl.includes('?') ? rawUrl.slice(rawUrl.indexOf('?') + 1) : '';
  if (search === '') return '';
  return search
    .split('&')
    .map((pair) => {
      const at = pair.indexOf('=');
      const name = decodeURIComponent(at < 0 ? pair : pair.slice(0, at));
      const value = at < 0 ? '' : decodeURIComponent(pair.slice(at + 1));
      return [uriEncode(name), uriEncode(value)] as const;
    })
    .sort(([a, av], [b, bv]) => (a < b ? -1 : a > b ? 1 : av < bv ? -1 : av > bv ? 1 : 0))
    .map(([name, value]) => `${name}=${value}`)
    .join('&');
}

function headerValue(req: http.IncomingMessage, name: string): string {
  const value = req.headers[name];
  const text = Array.isArray(value) ? value.join(',') : (value ?? '');
  return text.trim().replace(/\s+/g, ' ');
}

/** S3's error document; HEAD answers carry no body. */
export function s3Error(
  res: http.ServerResponse,
  head: boolean,
  status: number,
  code: string,
  message: string,
): void {
  const body =
    `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code>` +
    `<Message>${escapeXml(message)}</Message><RequestId>${randomUUID()}</RequestId></Error>`;
  res.writeHead(status, {
    'content-type': 'application/xml',
    'content-length': head ? 0 : Buffer.byteLength(body),
  });
  res.end(head ? undefined : body);
}
