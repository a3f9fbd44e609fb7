import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { streamBody, type BodySource } from '../../src/common/body-source';
import { WebIdentityCredentials, type StsApi } from '../../src/common/aws-credentials';
import { HttpError } from '../../src/common/http-error';
import { ConfigurationError } from '../../src/common/errors';
import { MemoryLogger } from '../../src/common/logger';
import { fetchModel } from '../../src/fetch-model/fetch';
import type { FetchSettings } from '../../src/fetch-model/inputs';
import { renderSummary } from '../../src/fetch-model/report';
import { bucketBase, encodeKey, storedDigests } from '../../src/fetch-model/s3';
import { parseBlobSpec } from '../../src/fetch-model/specs';
import type { ObjectStore, RemoteObject } from '../../src/fetch-model/store';

describe('bucketBase', () => {
  it('addresses AWS buckets virtual-hosted, dotted names path-style, China in .com.cn', () => {
    expect(bucketBase('models', 'eu-west-1').toString()).toBe(
      'https://models.s3.eu-west-1.amazonaws.com/',
    );
    expect(bucketBase('my.models', 'us-east-1').toString()).toBe(
      'https://s3.us-east-1.amazonaws.com/my.models',
    );
    expect(bucketBase('models', 'cn-north-1').host).toBe('models.s3.cn-north-1.amazonaws.com.cn');
  });

  it('addresses an S3-compatible endpoint path-style', () => {
    expect(bucketBase('models', 'garage', new URL('https://s3.local:3900/')).toString()).toBe(
      'https://s3.local:3900/models',
    );
  });
});

describe('encodeKey', () => {
  it("encodes every byte outside RFC 3986's unreserved set, keeping slashes", () => {
    expect(encodeKey("resnet/v2/it's (final)*.bin")).toBe('resnet/v2/it%27s%20%28final%29%2A.bin');
    expect(encodeKey('a+b=c/ü~_-.')).toBe('a%2Bb%3Dc/%C3%BC~_-.');
  });
});

describe('storedDigests', () => {
  const md5 = createHash('md5').update('x').digest('hex');
  const sha = createHash('sha256').update('x').digest('base64');

  it('takes the ETag of a single-part upload as its MD5', () => {
    expect(storedDigests(`"${md5}"`, {})).toEqual({
      contentMd5: Buffer.from(md5, 'hex').toString('base64'),
      md5Source: 'ETag (MD5)',
    });
  });

  it('claims no MD5 for multipart, SSE-KMS or SSE-C objects', () => {
    expect(storedDigests(`"${md5}-3"`, {})).toEqual({});
    expect(storedDigests(`"${md5}"`, { 'x-amz-server-side-encryption': 'aws:kms' })).toEqual({});
    expect(storedDigests(`"${md5}"`, { 'x-amz-server-side-encryption': 'aws:kms:dsse' })).toEqual(
      {},
    );
    expect(
      storedDigests(`"${md5}"`, { 'x-amz-server-side-encryption-customer-algorithm': 'AES256' }),
    ).toEqual({});
    // SSE-S3 (AES256) keeps the MD5 ETag.
    expect(
      storedDigests(`"${md5}"`, { 'x-amz-server-side-encryption': 'AES256' }).contentMd5,
    ).toBeDefined();
  });

  it('takes a full-object SHA-256 checksum, not a composite one', () => {
    expect(storedDigests('"x-2"', { 'x-amz-checksum-sha256': sha }).checksumSha256).toBe(sha);
    expect(
      storedDigests('"x-2"', {
        'x-amz-checksum-sha256': `${sha}-2`,
        'x-amz-checksum-type': 'COMPOSITE',
      }),
    ).toEqual({});
    expect(
      storedDigests('"x-2"', { 'x-amz-checksum-sha256': sha, 'x-amz-checksum-type': 'COMPOSITE' }),
    ).toEqual({});
  });
});

describe('parseBlobSpec for S3', () => {
  it('takes opaque version ids and refuses snapshots', () => {
    expect(parseBlobSpec('m.bin@version=3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY', 's3').pin).toEqual({
      kind: 'version',
      value: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY',
    });
    expect(() => parseBlobSpec('m.bin@snapshot=2024-05-01T10:20:30Z', 's3')).toThrow(
      /S3 has no snapshots/,
    );
    expect(() => parseBlobSpec('m.bin@version=a b', 's3')).toThrow(ConfigurationError);
  });
});

/** One object in memory, with whatever digests the test says the service stores. */
class MemoryStore implements ObjectStore {
  readonly description = 'memory bucket';
  constructor(
    readonly data: Buffer,
    readonly stored: Partial<RemoteObject>,
  ) {}
  async head(): Promise<RemoteObject> {
    return this.object();
  }
  async list(): Promise<RemoteObject[]> {
    return [this.object()];
  }
  private object(): RemoteObject {
    return {
      name: 'model.bin',
      size: this.data.length,
      etag: '"e"',
      uri: 'memory://model.bin',
      ...this.stored,
    };
  }
  async openRange(_object: RemoteObject, start: number, end: number): Promise<BodySource> {
    return streamBody(Readable.from([this.data.subarray(start, end + 1)]));
  }
}

describe('the engine checks the digests a store vouches for', () => {
  const data = randomBytes(300_000);
  const sha256 = createHash('sha256').update(data).digest('base64');
  const md5 = createHash('md5').update(data).digest('base64');
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'verify-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const settings = (): FetchSettings => ({
    store: {
      provider: 's3',
      bucket: 'models',
      identity: {
        roleArn: 'arn:aws:iam::123456789012:role/r',
        roleSessionName: 'fetch-model',
        audience: 'sts.amazonaws.com',
        region: 'eu-west-1',
      },
    },
    source: { kind: 'blobs', specs: [{ name: 'model.bin' }] },
    destination: dir,
    expectedSha256: new Map(),
    verifyMd5: 'auto',
    concurrency: 4,
    blockSize: 64 * 1024,
  });

  it('verifies a stored SHA-256 checksum and an MD5 ETag, and says so', async () => {
    const store = new MemoryStore(data, {
      checksumSha256: sha256,
      contentMd5: md5,
      md5Source: 'ETag (MD5)',
    });
    const logger = new MemoryLogger();
    const result = await fetchModel(settings(), store, logger);
    expect(result.files[0]).toMatchObject({ md5Verified: true, checksumSha256Verified: true });
    expect(logger.lines.join('\n')).toMatch(
      /ETag \(MD5\) verified, stored SHA-256 checksum verified/,
    );
    expect(renderSummary(result, store.description)).toContain(
      'downloaded, MD5 verified, SHA-256 checksum verified',
    );
  });

  it('fails on a stored SHA-256 checksum that does not match, writing nothing', async () => {
    const wrong = createHash('sha256').update('other').digest('base64');
    const store = new MemoryStore(data, { checksumSha256: wrong });
    await expect(fetchModel(settings(), store, new MemoryLogger())).rejects.toThrow(
      /stored SHA-256 checksum of 'model.bin' does not match its bytes/,
    );
    expect(readdirSync(dir)).toEqual([]);
  });

  it('names the ETag when an MD5 ETag does not match', async () => {
    const store = new MemoryStore(data, {
      contentMd5: createHash('md5').update('other').digest('base64'),
      md5Source: 'ETag (MD5)',
    });
    await expect(fetchModel(settings(), store, new MemoryLogger())).rejects.toThrow(
      /ETag \(MD5\) of 'model.bin' does not match its bytes/,
    );
    expect(existsSync(path.join(dir, 'model.bin'))).toBe(false);
  });
});

describe('WebIdentityCredentials', () => {
  const settings = {
    roleArn: 'arn:aws:iam::123456789012:role/fetch-model',
    roleSessionName: 'fetch-model',
    audience: 'sts.amazonaws.com',
    region: 'eu-west-1',
  };
  const env = { ACTIONS_ID_TOKEN_REQUEST_URL: 'http://x', ACTIONS_ID_TOKEN_REQUEST_TOKEN: 't' };
  const jwt = (claims: object) =>
    `e30.${Buffer.from(JSON.stringify(claims)).toString('base64url')}.c2ln`;

  /** An STS client that answers from a queue, recording what it was asked. */
  function sts(answers: Array<(input: Record<string, unknown>) => unknown>): StsApi & {
    inputs: Array<Record<string, unknown>>;
  } {
    const inputs: Array<Record<string, unknown>> = [];
    return {
      inputs,
      async assumeRoleWithWebIdentity(input) {
        inputs.push(input as unknown as Record<string, unknown>);
        const answer = answers.shift();
        if (!answer) throw new Error('no more answers');
        return answer(input as unknown as Record<string, unknown>) as never;
      },
    };
  }
  const issue = (id: string, expiresInMs: number) => () => ({
    Credentials: {
      AccessKeyId: `ASIA${id}`,
      SecretAccessKey: `secret-${id}`,
      SessionToken: `token-${id}`,
      Expiration: new Date(Date.now() + expiresInMs),
    },
    AssumedRoleUser: { Arn: 'arn:aws:sts::123456789012:assumed-role/fetch-model/fetch-model' },
  });

  it('assumes the role once for concurrent callers, masks, and refreshes near expiry', async () => {
    const client = sts([issue('ONE', 4 * 60_000), issue('TWO', 60 * 60_000)]);
    const logger = new MemoryLogger();
    let tokens = 0;
    const idToken = async () => jwt({ sub: 'repo:o/r:ref:refs/heads/main', n: ++tokens });
    const credentials = new WebIdentityCredentials(settings, idToken, client, logger, env);
    const [a, b] = await Promise.all([credentials.get(), credentials.get()]);
    expect(a).toBe(b);
    expect(client.inputs).toHaveLength(1);
    expect(client.inputs[0]).toMatchObject({
      RoleArn: settings.roleArn,
      RoleSessionName: 'fetch-model',
    });
    expect(logger.secrets).toEqual(
      expect.arrayContaining([
        'ASIAONE',
        'secret-ONE',
        'token-ONE',
        client.inputs[0].WebIdentityToken,
      ]),
    );
    // Four minutes left is under the five-minute margin: a fresh OIDC token, new credentials.
    const next = await credentials.get();
    expect(next.accessKeyId).toBe('ASIATWO');
    expect(tokens).toBe(2);
    expect(await credentials.get()).toBe(next);
  });

  it("names the trust policy's aud and sub when STS denies the role", async () => {
    const denied = new HttpError(
      'AWS STS AssumeRoleWithWebIdentity failed: HTTP 403 AccessDenied',
      403,
      'AccessDenied',
      undefined,
      'Not authorized to perform sts:AssumeRoleWithWebIdentity',
    );
    const client = sts([
      () => {
        throw denied;
      },
    ]);
    const idToken = async () =>
      jwt({
        iss: 'https://token.actions.githubusercontent.com',
        aud: 'sts.amazonaws.com',
        sub: 'repo:octo/app:environment:prod',
      });
    const credentials = new WebIdentityCredentials(
      settings,
      idToken,
      client,
      new MemoryLogger(),
      env,
    );
    const failure = credentials.get();
    await expect(failure).rejects.toThrow(ConfigurationError);
    await expect(failure).rejects.toThrow(
      /"token.actions.githubusercontent.com:aud" = "sts.amazonaws.com" and "token.actions.githubusercontent.com:sub" matching "repo:octo\/app:environment:prod"/,
    );
  });

  it('names the STS endpoint it could not reach and points at the proxy settings', async () => {
    const unreachable = Object.assign(
      new Error('getaddrinfo ENOTFOUND sts.eu-west-1.amazonaws.com'),
      { code: 'ENOTFOUND' },
    );
    const client = sts([
      () => {
        throw unreachable;
      },
    ]);
    const credentials = new WebIdentityCredentials(
      settings,
      async () => jwt({ sub: 'repo:o/r:ref:refs/heads/main' }),
      client,
      new MemoryLogger(),
      env,
    );
    await expect(credentials.get()).rejects.toThrow(
      'Could not assume arn:aws:iam::123456789012:role/fetch-model with GitHub OIDC: ' +
        'https://sts.eu-west-1.amazonaws.com did not answer (getaddrinfo ENOTFOUND ' +
        'sts.eu-west-1.amazonaws.com). Check that this runner reaches it, directly or through ' +
        'the proxy HTTPS_PROXY names (hosts in NO_PROXY go direct).',
    );
  });

  it('asks for id-token: write when the job has no OIDC endpoint', async () => {
    const credentials = new WebIdentityCredentials(
      settings,
      async () => 'x',
      sts([]),
      new MemoryLogger(),
      {},
    );
    await expect(credentials.get()).rejects.toThrow(/permissions: id-token: write/);
  });
});
