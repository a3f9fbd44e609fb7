/**
 * The S3 rows of the fetch benchmark (bench/fetch.ts runs them): the committed bundle with
 * provider s3 (GitHub OIDC → STS → SigV4) against the local S3-compatible server (fauxqs, in
 * memory, behind the test IAM gateway over HTTPS), and the naive peers on the same endpoint and
 * credentials: curl with `--aws-sigv4` (one connection) and the SDK's GetObject piped to a file.
 */
import { randomFillSync, createHash } from 'node:crypto';
import { createWriteStream, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import {
  CompleteMultipartUploadCommand,
  CreateMultipartUploadCommand,
  GetObjectCommand,
  S3Client,
  UploadPartCommand,
} from '@aws-sdk/client-s3';
import { AssumeRoleWithWebIdentityCommand, STSClient } from '@aws-sdk/client-sts';
import { errorLines, REPO_ROOT, runAction } from '../test/support/run-action';
import {
  cpuPerGiB,
  measureInProcess,
  median,
  readUsage,
  runMeasured,
  USAGE_PRELOAD,
  type Sample,
} from './fetch-measure';
import { READER_ROLE, S3_REGION, S3Stack } from '../test/support/s3-stack';

const MiB = 1024 * 1024;
const MB = 1_000_000;
const BUCKET = 'bench';
const KEY = 'model.bin';
const PART = 8 * MiB;
const EMPTY_SHA256 = createHash('sha256').update('').digest('hex');

export type S3Tool = 's3-action' | 's3-curl' | 's3-sdk';
export const S3_TOOLS: readonly S3Tool[] = ['s3-action', 's3-curl', 's3-sdk'];
export const S3_LABELS: Record<S3Tool, string> = {
  's3-action': 'S3: action bundle (OIDC → STS, 8 × 8 MiB ranges)',
  's3-curl': 'S3: curl `--aws-sigv4` (1 connection)',
  's3-sdk': 'S3: SDK `GetObject` piped to a file (in-process)',
};

/** What bench/fetch.ts lends: its settings, scratch folder and helpers. */
export interface S3BenchHost {
  sizeBytes: number;
  runs: number;
  scratch: string;
  settle: () => void;
  hashFile: (file: string) => Promise<string>;
  record: (key: string, sample: Sample, total: number) => void;
  fail: (message: string) => Error;
}

/** Uploads random bytes as 8 MiB parts, hashing them on the way; returns the sha256. */
async function upload(client: S3Client, size: number): Promise<string> {
  const hash = createHash('sha256');
  const { UploadId } = await client.send(
    new CreateMultipartUploadCommand({ Bucket: BUCKET, Key: KEY }),
  );
  const parts = [];
  for (let at = 0, number = 1; at < size; at += PART, number++) {
    const body = randomFillSync(Buffer.allocUnsafe(Math.min(PART, size - at)));
    hash.update(body);
    const { ETag } = await client.send(
      new UploadPartCommand({ Bucket: BUCKET, Key: KEY, UploadId, PartNumber: number, Body: body }),
    );
    parts.push({ ETag, PartNumber: number });
  }
  await client.send(
    new CompleteMultipartUploadCommand({
      Bucket: BUCKET,
      Key: KEY,
      UploadId,
      MultipartUpload: { Parts: parts },
    }),
  );
  return hash.digest('hex');
}

/** Credentials for the naive peers, obtained the same way: a GitHub token traded at STS. */
async function peerCredentials(stack: S3Stack) {
  const oidc = stack.oidc.jobEnv();
  const response = await fetch(`${oidc.ACTIONS_ID_TOKEN_REQUEST_URL}&audience=sts.amazonaws.com`, {
    headers: { authorization: `Bearer ${oidc.ACTIONS_ID_TOKEN_REQUEST_TOKEN}` },
  });
  const { value } = (await response.json()) as { value: string };
  const sts = new STSClient({ region: S3_REGION, endpoint: stack.sts.endpoint });
  const { Credentials } = await sts.send(
    new AssumeRoleWithWebIdentityCommand({
      RoleArn: READER_ROLE,
      RoleSessionName: 'bench-peer',
      WebIdentityToken: value,
    }),
  );
  return {
    accessKeyId: Credentials!.AccessKeyId!,
    secretAccessKey: Credentials!.SecretAccessKey!,
    sessionToken: Credentials!.SessionToken!,
  };
}

/** Runs every S3 variant `host.runs` times, interleaved; every download is checked. */
export async function measureS3(host: S3BenchHost): Promise<{ versions: string }> {
  const stack = new S3Stack();
  await stack.start();
  try {
    const client = await stack.bucket(BUCKET);
    console.error(`[bench] uploading ${host.sizeBytes / MiB} MiB to the local S3 server`);
    const sha256 = await upload(client, host.sizeBytes);
    const credentials = await peerCredentials(stack);
    const url = `${stack.gateway.endpoint}/${BUCKET}/${KEY}`;
    const deadlineMs = 60_000 + (host.sizeBytes / (4 * MB)) * 1000;

    const measure: Record<S3Tool, (workspace: string) => Promise<Sample & { file: string }>> = {
      's3-action': async (workspace) => {
        const usageFile = path.join(workspace, '.usage');
        const run = await runAction(
          'fetch-model',
          {
            ...stack.s3Inputs(BUCKET),
            blobs: KEY,
            path: path.join(workspace, 'model'),
          },
          {
            env: { ...stack.jobEnv(), BENCH_USAGE_FILE: usageFile },
            cwd: workspace,
            nodeArgs: ['--require', USAGE_PRELOAD],
          },
        );
        if (run.exitCode !== 0) {
          throw host.fail(
            `The S3 action exited with ${run.exitCode}:\n${errorLines(run).join('\n')}`,
          );
        }
        const reported = JSON.parse(run.outputs.files)[0]?.sha256;
        if (reported !== sha256) throw host.fail(`The S3 action reported sha256 ${reported}.`);
        return {
          seconds: run.milliseconds / 1000,
          ...readUsage(usageFile),
          file: path.join(workspace, 'model', KEY),
        };
      },
      's3-curl': async (workspace) => {
        const file = path.join(workspace, KEY);
        const sample = await runMeasured(
          'curl',
          [
            '--cacert',
            process.env.NODE_EXTRA_CA_CERTS ?? '',
            '-sS',
            '-f',
            '--aws-sigv4',
            `aws:amz:${S3_REGION}:s3`,
            '--user',
            `${credentials.accessKeyId}:${credentials.secretAccessKey}`,
            '-H',
            `x-amz-security-token: ${credentials.sessionToken}`,
            // S3 requires the payload hash header, which curl before 8.x does not add itself.
            '-H',
            `x-amz-content-sha256: ${EMPTY_SHA256}`,
            '-o',
            file,
            url,
          ],
          host.fail,
        );
        return { ...sample, file };
      },
      's3-sdk': async (workspace) => {
        const file = path.join(workspace, KEY);
        const sdk = new S3Client({
          endpoint: stack.gateway.endpoint,
          region: S3_REGION,
          forcePathStyle: true,
          credentials,
        });
        const sample = await measureInProcess(async () => {
          const { Body } = await sdk.send(new GetObjectCommand({ Bucket: BUCKET, Key: KEY }));
          await pipeline(Body as Readable, createWriteStream(file));
        });
        sdk.destroy();
        return { ...sample, file };
      },
    };

    for (let run = 1; run <= host.runs; run++) {
      for (const tool of S3_TOOLS) {
        const workspace = mkdtempSync(path.join(host.scratch, `${tool}-`));
        host.settle();
        let timer: NodeJS.Timeout | undefined;
        const deadline = new Promise<never>((_, reject) => {
          timer = setTimeout(() => reject(host.fail(`${tool} took too long`)), deadlineMs);
        });
        const sample = await Promise.race([measure[tool](workspace), deadline]).finally(() =>
          clearTimeout(timer),
        );
        const actual = await host.hashFile(sample.file);
        if (actual !== sha256) throw host.fail(`${tool} wrote bytes with sha256 ${actual}.`);
        const { seconds, cpuSeconds, rssKiB } = sample;
        host.record(`${tool}/loopback`, { seconds, cpuSeconds, rssKiB }, host.runs);
        rmSync(workspace, { recursive: true, force: true });
      }
    }
    // fauxqs exports no package.json (nor a require entry): read it from node_modules.
    const version = (name: string) =>
      (
        JSON.parse(
          readFileSync(path.join(REPO_ROOT, 'node_modules', name, 'package.json'), 'utf8'),
        ) as { version: string }
      ).version;
    return {
      versions: `fauxqs ${version('fauxqs')} (in memory) behind the test IAM gateway (HTTPS, SigV4 checked); @aws-sdk/client-s3 ${version('@aws-sdk/client-s3')}`,
    };
  } finally {
    await stack.stop();
  }
}

/** Table rows for the S3 variants, ratios against curl and the SDK on the same endpoint. */
export function s3ResultRows(samples: Map<string, Sample[]>, sizeBytes: number): string[] {
  const time = (tool: S3Tool) =>
    median((samples.get(`${tool}/loopback`) ?? []).map((s) => s.seconds));
  const curl = time('s3-curl');
  const sdk = time('s3-sdk');
  return S3_TOOLS.map((tool) => {
    const list = samples.get(`${tool}/loopback`) ?? [];
    const t = time(tool);
    const cpu = cpuPerGiB(list, sizeBytes);
    const rss =
      tool === 's3-action'
        ? ((Math.max(...list.map((s) => s.rssKiB ?? 0)) * 1024) / MB).toFixed(0)
        : '–';
    return (
      `| ${S3_LABELS[tool]} | loopback | ${list.length} | ${t.toFixed(2)} | ` +
      `${list.map((s) => s.seconds.toFixed(2)).join(', ')} | ${(sizeBytes / MB / t).toFixed(0)} | ` +
      `${(t / curl).toFixed(2)} | ${(t / sdk).toFixed(2)} | ${cpu === undefined ? '–' : cpu.toFixed(2)} | ${rss} |`
    );
  });
}
