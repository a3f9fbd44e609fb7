import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  PutObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { decodeJwt } from '../servers/jwt';
import { FaultProxy, type ProxiedRequest } from '../support/fault-proxy';
import { errorLines, runAction, type ActionRun } from '../support/run-action';
import {
  LIST_ONLY_ROLE,
  NO_VERSIONS_ROLE,
  OTHER_REPO_ROLE,
  READER_ROLE,
  S3Stack,
} from '../support/s3-stack';
import {
  describeLocalFileScenarios,
  entries,
  expectCleanFailureWhenUnavailable,
} from '../support/fetch-scenarios';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const md5Hex = (data: Buffer) => createHash('md5').update(data).digest('hex');
const MiB = 1024 * 1024;
/** S3's smallest part (but the last). */
const PART = 5 * MiB;

async function put(client: S3Client, bucket: string, key: string, body: Buffer): Promise<string> {
  const { ETag } = await client.send(
    new PutObjectCommand({ Bucket: bucket, Key: key, Body: body }),
  );
  return ETag!;
}

/** A multipart upload in `partSize` parts: its ETag is `"<md5 of part md5s>-<parts>"`. */
async function putMultipart(
  client: S3Client,
  bucket: string,
  key: string,
  body: Buffer,
  partSize: number,
): Promise<string> {
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({ Bucket: bucket, Key: key }),
  );
  const parts = [];
  for (let at = 0, number = 1; at < body.length; at += partSize, number++) {
    const { ETag } = await client.send(
      new UploadPartCommand({
        Bucket: bucket,
        Key: key,
        UploadId,
        PartNumber: number,
        Body: body.subarray(at, at + partSize),
      }),
    );
    parts.push({ ETag, PartNumber: number });
  }
  const { ETag } = await client.send(
    new CompleteMultipartUploadCommand({
      Bucket: bucket,
      Key: key,
      UploadId,
      MultipartUpload: { Parts: parts },
    }),
  );
  return ETag!;
}

const expectFailure = (run: ActionRun, message: RegExp) => {
  expect(run.exitCode).toBe(1);
  expect(errorLines(run).join('\n')).toMatch(message);
};

/** Every line of what the step left visible (logs, summary, outputs) but the mask commands. */
function unmasked(run: ActionRun): string {
  return [run.stdout, run.stderr, run.summary, JSON.stringify(run.outputs)]
    .join('\n')
    .split('\n')
    .filter((line) => !line.startsWith('::add-mask::'))
    .join('\n');
}

describe('fetch-model from S3 (fauxqs), signed in through GitHub OIDC and STS', () => {
  const stack = new S3Stack();
  const model = randomBytes(6 * MiB + 517);
  const labels = Buffer.from('n01440764 tench\nn01443537 goldfish\n');
  let client: S3Client;
  let workspace: string;

  beforeAll(async () => {
    await stack.start();
    client = await stack.bucket('models');
    await putMultipart(client, 'models', 'ResNet_152.model', model, PART);
    await put(client, 'models', 'synset.txt', labels);
    await put(client, 'models', 'resnet/v2/weights.bin', model.subarray(0, 100_000));
    await put(client, 'models', 'resnet/v2/meta/labels.txt', labels);
    await put(client, 'models', 'resnet/v2/', Buffer.alloc(0));
    await put(client, 'models', 'resnet/v3/other.bin', labels);
  });
  afterAll(() => stack.stop());
  beforeEach(() => (workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'))));
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  const fetch = (
    inputs: Record<string, string>,
    options: { role?: string; env?: Record<string, string> } = {},
  ) =>
    runAction(
      'fetch-model',
      { ...stack.s3Inputs('models', options.role), ...inputs },
      { env: options.env ?? stack.jobEnv(), cwd: workspace },
    );

  it('downloads the model set and writes the same verified outputs as for Azure', async () => {
    const run = await fetch({ blobs: 'ResNet_152.model\nsynset.txt', 'block-size': '1MiB' });
    // On Node 20 (this machine; the action runs on node24) the AWS SDK warns once about it.
    const sdkNodeWarning =
      /\(node:\d+\) Warning: NodeVersionSupportWarning[\s\S]*?--trace-warnings[^\n]*\n/;
    expect(run.stderr.replace(sdkNodeWarning, '')).toBe('');
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    const destination = path.join(workspace, 'model');
    expect(run.outputs.path).toBe(destination);
    expect(readFileSync(path.join(destination, 'ResNet_152.model')).equals(model)).toBe(true);
    expect(readFileSync(path.join(destination, 'synset.txt')).equals(labels)).toBe(true);
    expect(entries(destination)).toEqual([
      '.fetch-model.lock.json',
      'ResNet_152.model',
      'synset.txt',
    ]);
    const files = JSON.parse(run.outputs.files);
    expect(files).toEqual([
      expect.objectContaining({
        name: 'ResNet_152.model',
        path: path.join(destination, 'ResNet_152.model'),
        size: model.length,
        sha256: sha256(model),
        // A multipart ETag is not an MD5: nothing claims one.
        etag: expect.stringMatching(/^"[0-9a-f]{32}-2"$/),
        'content-md5': null,
        'last-modified': expect.any(String),
        uri: `${stack.gateway.endpoint}/models/ResNet_152.model`,
      }),
      expect.objectContaining({
        name: 'synset.txt',
        size: labels.length,
        sha256: sha256(labels),
        etag: `"${md5Hex(labels)}"`,
        'content-md5': Buffer.from(md5Hex(labels), 'hex').toString('base64'),
      }),
    ]);
    const digest = createHash('sha256')
      .update(`ResNet_152.model ${sha256(model)}\nsynset.txt ${sha256(labels)}\n`)
      .digest('hex');
    expect(run.outputs['model-digest']).toBe(digest);
    expect(run.outputs['cache-hit']).toBe('false');
    expect(run.stdout).toMatch(/^synset\.txt: .* ETag \(MD5\) verified/m);
    expect(run.summary).toContain("bucket 'models'");
    expect(run.summary).toContain('| `ResNet_152.model` | 6.00 MiB |');
    expect(run.summary).toMatch(/`synset.txt` .*downloaded, MD5 verified/);
    expect(run.summary).toContain(digest);
  });

  it('assumes the role once with a fresh OIDC token, and signs every S3 request with it', async () => {
    const stsBefore = stack.sts.requests.length;
    const issuedBefore = stack.sts.issued.length;
    const gatewayBefore = stack.gateway.requests.length;
    const run = await fetch({ prefix: 'resnet/v2' });
    expect(run.exitCode).toBe(0);
    expect(stack.sts.requests.slice(stsBefore)).toEqual([
      { action: 'AssumeRoleWithWebIdentity', roleArn: READER_ROLE, sessionName: 'fetch-model' },
    ]);
    expect(stack.oidc.issuedAudiences.at(-1)).toBe('sts.amazonaws.com');
    const [credentials] = stack.sts.issued.slice(issuedBefore);
    const requests = stack.gateway.requests.slice(gatewayBefore);
    expect(requests.map((request) => request.action)).toEqual(
      expect.arrayContaining(['s3:ListBucket', 's3:GetObject']),
    );
    for (const request of requests) {
      expect(request.accessKeyId).toBe(credentials.accessKeyId);
      expect(request.denied).toBeUndefined();
    }
    expect(run.stdout).toContain(
      'Assumed arn:aws:sts::123456789012:assumed-role/fetch-model/fetch-model with GitHub OIDC',
    );
  });

  it('has a gateway that accepts only the issued credentials, correctly signed', async () => {
    const run = await fetch({ blobs: 'synset.txt' });
    expect(run.exitCode).toBe(0);
    const issued = stack.sts.issued.at(-1)!;
    const signedWith = (secretAccessKey: string, sessionToken = issued.sessionToken) =>
      new S3Client({
        endpoint: stack.gateway.endpoint,
        region: 'eu-west-1',
        forcePathStyle: true,
        credentials: { accessKeyId: issued.accessKeyId, secretAccessKey, sessionToken },
      }).send(new GetObjectCommand({ Bucket: 'models', Key: 'synset.txt' }));
    // The AWS SDK's own signature passes the gateway's independent SigV4 check...
    const ok = await signedWith(issued.secretAccessKey);
    expect(Buffer.from(await ok.Body!.transformToByteArray()).equals(labels)).toBe(true);
    // ...and a wrong secret or session token does not.
    await expect(signedWith('not-the-secret')).rejects.toMatchObject({
      name: 'SignatureDoesNotMatch',
    });
    await expect(signedWith(issued.secretAccessKey, 'forged')).rejects.toMatchObject({
      name: 'InvalidToken',
    });
  });

  it('never prints or exports the OIDC token or the temporary credentials', async () => {
    const issuedBefore = stack.sts.issued.length;
    const tokensBefore = stack.oidc.issuedTokens.length;
    const githubEnv = path.join(workspace, 'github-env');
    writeFileSync(githubEnv, '');
    const run = await fetch(
      { blobs: 'ResNet_152.model' },
      { env: { ...stack.jobEnv(), GITHUB_ENV: githubEnv } },
    );
    expect(run.exitCode).toBe(0);
    const [credentials] = stack.sts.issued.slice(issuedBefore);
    const idTokens = stack.oidc.issuedTokens.slice(tokensBefore);
    expect(idTokens.length).toBe(1);
    expect(decodeJwt(idTokens[0]).aud).toBe('sts.amazonaws.com');
    const masked = run.stdout
      .split('\n')
      .filter((line) => line.startsWith('::add-mask::'))
      .map((line) => line.slice('::add-mask::'.length));
    const visible = unmasked(run);
    for (const secret of [
      credentials.accessKeyId,
      credentials.secretAccessKey,
      credentials.sessionToken,
      ...idTokens,
    ]) {
      expect(masked).toContain(secret);
      expect(visible).not.toContain(secret);
    }
    expect(visible).not.toContain(idTokens[0].split('.')[2]);
    expect(readFileSync(githubEnv, 'utf8')).toBe('');
    expect(visible).not.toMatch(/AWS_(ACCESS_KEY_ID|SECRET_ACCESS_KEY|SESSION_TOKEN)/);
  });

  const blobs = () => ({
    vouched: { name: 'synset.txt', bytes: labels },
    unvouched: { name: 'ResNet_152.model', bytes: model },
  });

  describeLocalFileScenarios(
    (inputs) => fetch(inputs),
    () => workspace,
    blobs,
  );

  it('fetches a folder by prefix, keeping relative paths and skipping folder markers', async () => {
    const run = await fetch({ prefix: 'resnet/v2', path: 'weights' });
    expect(run.exitCode).toBe(0);
    expect(entries(path.join(workspace, 'weights'))).toEqual([
      '.fetch-model.lock.json',
      'meta',
      'meta/labels.txt',
      'weights.bin',
    ]);
    const names = JSON.parse(run.outputs.files).map((file: { name: string }) => file.name);
    expect(names).toEqual(['resnet/v2/meta/labels.txt', 'resnet/v2/weights.bin']);
  });

  it('honours an ETag pin, and refuses one the object no longer has', async () => {
    const ok = await fetch({ blobs: `synset.txt@etag="${md5Hex(labels)}"` });
    expect(ok.exitCode).toBe(0);
    const stale = await fetch({ blobs: `synset.txt@etag=${'0'.repeat(32)}` });
    expectFailure(stale, /'synset.txt'.*no longer has the pinned ETag '0{32}'; it now has "/);
  });

  it('reads a pinned version by versionId, which needs s3:GetObjectVersion', async () => {
    // fauxqs keeps no versions (it serves the current object whatever versionId says), so this
    // checks what the action asks for and what IAM lets it: versionId on HEAD and every GET.
    const before = stack.gateway.requests.length;
    const run = await fetch({ blobs: 'synset.txt@version=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY' });
    expect(run.exitCode).toBe(0);
    const requests = stack.gateway.requests.slice(before);
    expect(requests.length).toBeGreaterThanOrEqual(2);
    for (const request of requests) {
      expect(request.query.get('versionId')).toBe('3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY');
      expect(request.action).toBe('s3:GetObjectVersion');
    }
    expect(JSON.parse(run.outputs.files)[0]).toMatchObject({
      'version-id': '3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY',
      uri: `${stack.gateway.endpoint}/models/synset.txt?versionId=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY`,
    });

    const denied = await fetch(
      { blobs: 'synset.txt@version=3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY' },
      { role: NO_VERSIONS_ROLE },
    );
    expectFailure(
      denied,
      /role\/no-versions may not read 's3:\/\/models\/synset.txt'.*s3:GetObjectVersion/,
    );
  });

  it('fails on a sha256 mismatch and leaves nothing behind', async () => {
    const run = await fetch({
      blobs: 'ResNet_152.model, synset.txt',
      sha256: `synset.txt=${'0'.repeat(64)}`,
    });
    expectFailure(
      run,
      /sha256 of 'synset.txt' is [0-9a-f]{64}, but the 'sha256' input expects 0{64}/,
    );
    expect(entries(path.join(workspace, 'model'))).toEqual([]);
  });

  it('names the key and the bucket when an object does not exist', async () => {
    const run = await fetch({ blobs: 'synset.txt, ResNet_999.model' });
    expectFailure(run, /Object 'ResNet_999.model' was not found in bucket 'models'/);
    expect(entries(path.join(workspace, 'model'))).toEqual([]);
  });

  it('names the bucket when it does not exist', async () => {
    const run = await fetch({ bucket: 'no-such-models', blobs: 'a.bin' });
    expectFailure(run, /Bucket 'no-such-models' does not exist/);
  });

  it('names s3:GetObject and the role on AccessDenied', async () => {
    const run = await fetch({ blobs: 'synset.txt' }, { role: LIST_ONLY_ROLE });
    expectFailure(
      run,
      /Role arn:aws:iam::123456789012:role\/list-only may not read 's3:\/\/models\/synset.txt' \(AccessDenied\)\. Its permissions policy must allow s3:GetObject on arn:aws:s3:::models\/\*/,
    );
  });

  it("names the trust policy's sub and aud when the role does not trust this workflow", async () => {
    const run = await fetch({ blobs: 'synset.txt' }, { role: OTHER_REPO_ROLE });
    expectFailure(
      run,
      /refused to let this workflow assume arn:aws:iam::123456789012:role\/other-repo/,
    );
    const message = errorLines(run).join('\n');
    expect(message).toContain('"token.actions.githubusercontent.com:aud" = "sts.amazonaws.com"');
    expect(message).toContain(
      '"token.actions.githubusercontent.com:sub" matching "repo:octo-org/ai-app:ref:refs/heads/main"',
    );
  });

  it('explains an audience the OIDC provider does not accept', async () => {
    const run = await fetch({ blobs: 'synset.txt', audience: 'api://AzureADTokenExchange' });
    expectFailure(
      run,
      /rejected this job's GitHub OIDC token .*Incorrect token audience.*audiences \(client ids\) include "api:\/\/AzureADTokenExchange"/,
    );
  });

  it('says how to fix a job without id-token: write', async () => {
    const run = await fetch({ blobs: 'synset.txt' }, { env: {} });
    expectFailure(run, /Add 'permissions: id-token: write'/);
  });

  it('refuses Azure inputs with provider s3, and names a missing bucket', async () => {
    expectFailure(
      await fetch({ blobs: 'synset.txt', container: 'models' }),
      /Input 'container' does not apply to provider 's3'.*use 'bucket'/,
    );
    expectFailure(await fetch({ blobs: 'synset.txt', bucket: '' }), /Input 'bucket' is required/);
  });
});

/** A ranged read of the model object (not a HEAD or a list). */
const isRangedGet = (request: ProxiedRequest) =>
  request.method === 'GET' &&
  request.path.startsWith('/faults/model.bin') &&
  request.headers.range !== undefined;

/**
 * The Azure fault tests, repeated for S3: the same engine through a proxy that drops
 * connections mid-body, answers 503 SlowDown, or lets the test overwrite the object between
 * the action's HEAD and its ranged reads.
 */
describe('fetch-model from S3 through a faulty network', () => {
  const stack = new S3Stack();
  const model = randomBytes(6 * MiB + 333);
  let client: S3Client;
  let proxy: FaultProxy;
  let workspace: string;

  beforeAll(async () => {
    await stack.start();
    client = await stack.bucket('faults');
    await putMultipart(client, 'faults', 'model.bin', model, PART);
    proxy = await new FaultProxy(new URL(stack.gateway.endpoint)).start();
    // The signature covers Host: a proxy in the path must pass it through.
    proxy.preserveHost = true;
  });
  afterAll(async () => {
    await proxy?.stop();
    await stack.stop();
  });
  beforeEach(() => {
    workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'));
    proxy.decide = () => ({ kind: 'pass' });
  });
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  const fetch = (inputs: Record<string, string> = {}) =>
    runAction(
      'fetch-model',
      {
        ...stack.s3Inputs('faults'),
        endpoint: proxy.url(stack.gateway.endpoint),
        blobs: 'model.bin',
        'block-size': '1MiB',
        concurrency: '4',
        ...inputs,
      },
      { env: stack.jobEnv(), cwd: workspace },
    );

  it('resumes ranges cut mid-transfer and still gets every byte right', async () => {
    const cut = new Set<string>();
    proxy.decide = (request) => {
      const end = String(request.headers.range).split('-')[1];
      if (!isRangedGet(request) || cut.has(end)) return { kind: 'pass' };
      cut.add(end);
      return { kind: 'cut', afterBytes: 100 * 1024 };
    };
    const run = await fetch();
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(cut.size).toBe(7);
    expect(sha256(readFileSync(path.join(workspace, 'model', 'model.bin')))).toBe(sha256(model));
    expect(JSON.parse(run.outputs.files)[0].sha256).toBe(sha256(model));
    expect(run.stdout).toMatch(/interrupted at byte \d+ .*resuming/);
    const starts = proxy.requests
      .filter(isRangedGet)
      .map((request) => Number(/^bytes=(\d+)-/.exec(String(request.headers.range))![1]));
    expect(starts.filter((start) => start % MiB !== 0).length).toBeGreaterThan(0);
    expect(run.summary).toContain('range(s) resumed');
  });

  it('rides out 503 SlowDown on HEAD and ranged reads', async () => {
    let heads = 0;
    let gets = 0;
    proxy.decide = (request) => {
      if (request.method === 'HEAD' && heads++ < 2) return { kind: 'status', status: 503 };
      if (isRangedGet(request) && gets++ < 3) return { kind: 'status', status: 503 };
      return { kind: 'pass' };
    };
    const run = await fetch();
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(sha256(readFileSync(path.join(workspace, 'model', 'model.bin')))).toBe(sha256(model));
    expect(run.stdout).toMatch(/HTTP 503/);
  });

  it('fails cleanly, leaving no file behind, when the service stays unavailable', () =>
    expectCleanFailureWhenUnavailable(proxy, isRangedGet, () => fetch(), workspace));

  it('detects an object overwritten during the download (If-Match) and writes nothing', async () => {
    let overwritten = false;
    proxy.decide = (request) => {
      if (!isRangedGet(request) || overwritten) return { kind: 'pass' };
      overwritten = true;
      return {
        kind: 'hold',
        before: async () => {
          await put(client, 'faults', 'model.bin', randomBytes(model.length));
        },
      };
    };
    try {
      const run = await fetch();
      expect(run.exitCode).toBe(1);
      expect(errorLines(run).join('\n')).toMatch(
        /'model.bin' changed while it was being downloaded .*nothing was written/,
      );
      expect(entries(path.join(workspace, 'model'))).toEqual([]);
    } finally {
      await putMultipart(client, 'faults', 'model.bin', model, PART);
    }
  });
});
