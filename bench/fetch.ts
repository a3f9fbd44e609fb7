/**
 * Benchmark of action-fetch-model against a real Azurite, in one run: the committed bundle run
 * as the runner runs it, `curl` with a SAS URL and the SDK's `downloadToFile`, first over plain
 * loopback and then through a proxy that caps every connection at 50 MB/s (as Azure caps one
 * connection), plus a re-run of the action with nothing changed. Prints a Markdown report and
 * writes it to bench/results/fetch.md. Run with `npm run bench:fetch`.
 *
 * Environment: BENCH_SIZE_MIB (1024), BENCH_RUNS (3), BENCH_THROTTLED_RUNS (1),
 * BENCH_THROTTLE_MBPS (50, per connection, 10^6 bytes/s), BENCH_CONTENT_MD5 (1 stores a
 * Content-MD5 on the blob, so the action verifies it too), BENCH_CPU_PROF (a directory: the
 * action's processes write V8 CPU profiles there).
 */
import { execFileSync, spawn } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import {
  createReadStream,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { BlobServiceClient } from '@azure/storage-blob';
import { errorLines, runAction } from '../test/support/run-action';
import { Stack } from '../test/support/stack';
import { measureS3, s3ResultRows } from './fetch-s3';
import { ThrottleProxy, type ProxyStats } from './throttle-proxy';

const MiB = 1024 * 1024;
const MB = 1_000_000;
const CONTAINER = 'bench';
const BLOB = 'model.bin';
/** Staged block size of the upload; also bounds the upload's memory (times its concurrency). */
const UPLOAD_BLOCK = 8 * MiB;
const PRELOAD = path.join(__dirname, 'rss-preload.cjs');
const RESULTS = path.join(__dirname, 'results', 'fetch.md');

/** A failure of the thing measured (wrong bytes, an exit code), not a missed target. */
class BenchFailure extends Error {}

interface BenchConfig {
  sizeBytes: number;
  runs: number;
  throttledRuns: number;
  /** Cap of each proxied connection, in bytes per second. */
  throttleBytesPerSecond: number;
  contentMd5: boolean;
  cpuProfDir?: string;
}

function readConfig(env: NodeJS.ProcessEnv = process.env): BenchConfig {
  const prof = env.BENCH_CPU_PROF;
  return {
    sizeBytes: positiveInteger(env, 'BENCH_SIZE_MIB', 1024) * MiB,
    runs: positiveInteger(env, 'BENCH_RUNS', 3),
    throttledRuns: positiveInteger(env, 'BENCH_THROTTLED_RUNS', 1),
    throttleBytesPerSecond: positiveInteger(env, 'BENCH_THROTTLE_MBPS', 50) * MB,
    contentMd5: env.BENCH_CONTENT_MD5 === '1',
    cpuProfDir: prof ? path.resolve(prof) : undefined,
  };
}

function positiveInteger(env: NodeJS.ProcessEnv, name: string, fallback: number): number {
  const raw = env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1) {
    throw new Error(`${name} must be a positive integer, not '${raw}'.`);
  }
  return value;
}

/** The uploaded blob and what its bytes must hash to. */
interface ModelBlob {
  size: number;
  sha256: string;
  /** Base64, as Content-MD5 is written. */
  md5: string;
}

/**
 * Uploads `size` random (incompressible) bytes as staged blocks, hashing them on the way, so
 * neither the whole blob nor a temporary file is ever needed: memory stays at a few blocks.
 */
async function uploadModel(stack: Stack, config: BenchConfig): Promise<ModelBlob> {
  const blob = (await stack.azurite.container(CONTAINER)).getBlockBlobClient(BLOB);
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  const chunks = randomChunks(config.sizeBytes, UPLOAD_BLOCK, (chunk) => {
    sha256.update(chunk);
    md5.update(chunk);
  });
  await blob.uploadStream(Readable.from(chunks, { objectMode: false }), UPLOAD_BLOCK, 4);
  const md5Digest = md5.digest();
  // Staged uploads store no Content-MD5; real pipelines often add one (azcopy --put-md5).
  if (config.contentMd5) await blob.setHTTPHeaders({ blobContentMD5: md5Digest });
  return {
    size: config.sizeBytes,
    sha256: sha256.digest('hex'),
    md5: md5Digest.toString('base64'),
  };
}

/** Fresh random buffers (never reused: the uploader may still hold the previous one). */
function* randomChunks(
  total: number,
  chunkSize: number,
  onChunk: (chunk: Buffer) => void,
): Generator<Buffer> {
  for (let sent = 0; sent < total; sent += chunkSize) {
    const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(chunkSize, total - sent)));
    onChunk(chunk);
    yield chunk;
  }
}

type Tool = 'action' | 'curl' | 'sdk';
type Link = 'loopback' | 'throttled';
const TOOLS: readonly Tool[] = ['action', 'curl', 'sdk'];

interface Sample {
  seconds: number;
  /** Peak RSS of the action's process. */
  rssKiB?: number;
  /** The download alone, as the action logs it (without start-up and sign-in). */
  downloadSeconds?: number;
  /** Traffic through the throttling proxy during this sample. */
  proxy?: ProxyStats;
}

/** What every measurement needs: the stack, the blob, the settings and a scratch folder. */
interface Context {
  stack: Stack;
  blob: ModelBlob;
  config: BenchConfig;
  scratch: string;
}

/** Where a tool's download lands inside its workspace. */
function downloadedFile(tool: Tool, workspace: string): string {
  return tool === 'action' ? path.join(workspace, 'model', BLOB) : path.join(workspace, BLOB);
}

/**
 * Runs the committed bundle the way the runner does (OIDC through the doubles), with the RSS
 * preload, and checks its exit code, `cache-hit` and the sha256 it reports.
 */
async function timeAction(
  ctx: Context,
  endpoint: string,
  workspace: string,
  expectCacheHit: boolean,
): Promise<Sample> {
  const rssFile = path.join(workspace, '.rss');
  const nodeArgs = ['--require', PRELOAD];
  if (ctx.config.cpuProfDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${ctx.config.cpuProfDir}`);
  const run = await runAction(
    'fetch-model',
    {
      'blob-endpoint': endpoint,
      container: CONTAINER,
      blobs: BLOB,
      path: path.join(workspace, 'model'),
      ...ctx.stack.identityInputs(),
    },
    { env: { ...ctx.stack.oidc.jobEnv(), BENCH_RSS_FILE: rssFile }, cwd: workspace, nodeArgs },
  );
  if (run.exitCode !== 0) {
    const why = errorLines(run).join('\n') || run.stderr.slice(-2000) || run.stdout.slice(-2000);
    throw new BenchFailure(`The action exited with ${run.exitCode}:\n${why}`);
  }
  const files = JSON.parse(run.outputs.files ?? '[]') as Array<{ name: string; sha256: string }>;
  const reported = files.find((file) => file.name === BLOB)?.sha256;
  if (reported !== ctx.blob.sha256) {
    throw new BenchFailure(
      `The action reported sha256 ${reported}, the blob is ${ctx.blob.sha256}.`,
    );
  }
  if (run.outputs['cache-hit'] !== String(expectCacheHit)) {
    throw new BenchFailure(
      `The action reported cache-hit '${run.outputs['cache-hit']}', expected '${expectCacheHit}'.`,
    );
  }
  const rssKiB = Number(readFileSync(rssFile, 'utf8'));
  rmSync(rssFile);
  return { seconds: run.milliseconds / 1000, rssKiB, downloadSeconds: loggedDownload(run.stdout) };
}

/** The action logs `<file>: <size> in <n> ms (<rate>)` once a file is downloaded. */
function loggedDownload(stdout: string): number | undefined {
  const match = new RegExp(`^${BLOB.replace(/\./g, '\\.')}: .+? in (\\d+) ms \\(`, 'm').exec(
    stdout,
  );
  return match ? Number(match[1]) / 1000 : undefined;
}

/** curl on one connection with a SAS URL; it does not verify what it wrote. */
async function timeCurl(ctx: Context, endpoint: string, workspace: string): Promise<Sample> {
  const sas = ctx.stack.azurite.containerSas(CONTAINER, 'rl');
  const url = `${endpoint}/${CONTAINER}/${BLOB}?${sas}`;
  const ca = process.env.NODE_EXTRA_CA_CERTS ?? '';
  const started = performance.now();
  await runCommand('curl', [
    '--cacert',
    ca,
    '-sS',
    '-f',
    '-o',
    downloadedFile('curl', workspace),
    url,
  ]);
  return { seconds: (performance.now() - started) / 1000 };
}

/** The naive SDK call, in this process, authorized by the account key. */
async function timeSdk(ctx: Context, endpoint: string, workspace: string): Promise<Sample> {
  const client = new BlobServiceClient(endpoint, ctx.stack.azurite.sharedKey)
    .getContainerClient(CONTAINER)
    .getBlobClient(BLOB);
  const started = performance.now();
  await client.downloadToFile(downloadedFile('sdk', workspace));
  return { seconds: (performance.now() - started) / 1000 };
}

/** Runs a command to its end; a non-zero exit is a failure (its stderr says why). */
function runCommand(command: string, args: string[]): Promise<void> {
  return new Promise((resolve, reject) => {
    const child = spawn(command, args, { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    child.once('error', reject);
    child.once('close', (code) => {
      if (code === 0) resolve();
      else reject(new BenchFailure(`${command} exited with ${code}: ${stderr.trim()}`));
    });
  });
}

/** SHA-256 of a file, streamed; used after the clock stops, for tools that do not verify. */
async function hashFile(file: string): Promise<string> {
  const hash = createHash('sha256');
  for await (const chunk of createReadStream(file, { highWaterMark: MiB }))
    hash.update(chunk as Buffer);
  return hash.digest('hex');
}

async function verifyFile(ctx: Context, tool: Tool, file: string): Promise<void> {
  const actual = await hashFile(file);
  if (actual !== ctx.blob.sha256) {
    throw new BenchFailure(
      `${tool} wrote bytes with sha256 ${actual}, the blob is ${ctx.blob.sha256}.`,
    );
  }
}

/**
 * Flushes dirty pages before a run, so the previous run's write-back does not land on this
 * run's clock.
 */
function settle(): void {
  execFileSync('sync');
}

/** Rejects if `work` takes longer than `ms`, so a hung download cannot hang the benchmark. */
async function withDeadline<T>(work: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new BenchFailure(`${what} took over ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}

/** Collected samples by variant (`tool/link`, or `rerun`). */
type Samples = Map<string, Sample[]>;

function record(samples: Samples, key: string, sample: Sample, total: number): void {
  const list = samples.get(key) ?? [];
  list.push(sample);
  samples.set(key, list);
  const extra = sample.rssKiB ? `, peak RSS ${(sample.rssKiB / 1024).toFixed(0)} MiB` : '';
  console.error(`[bench] ${key} ${list.length}/${total}: ${sample.seconds.toFixed(2)} s${extra}`);
}

/**
 * Measures each tool `runs` times over one link, interleaved (action, curl, SDK, action, ...)
 * so drift on the machine spreads evenly. Every download is checked after the clock stops,
 * then deleted. Returns the last action workspace when asked to keep it (for the re-run).
 */
async function measureLink(
  ctx: Context,
  link: Link,
  endpoint: string,
  runs: number,
  samples: Samples,
  options: { proxy?: ThrottleProxy; keepLastAction?: boolean } = {},
): Promise<string | undefined> {
  // Generous: start-up plus the blob at 4 MB/s, far below any variant's speed.
  const deadlineMs = 60_000 + (ctx.blob.size / (4 * MB)) * 1000;
  let kept: string | undefined;
  for (let run = 1; run <= runs; run++) {
    for (const tool of TOOLS) {
      const workspace = mkdtempSync(path.join(ctx.scratch, `${tool}-${link}-`));
      settle();
      options.proxy?.resetStats();
      const measuring =
        tool === 'action'
          ? timeAction(ctx, endpoint, workspace, false)
          : tool === 'curl'
            ? timeCurl(ctx, endpoint, workspace)
            : timeSdk(ctx, endpoint, workspace);
      const sample = await withDeadline(measuring, deadlineMs, `${tool} over ${link}`);
      if (options.proxy) sample.proxy = options.proxy.resetStats();
      await verifyFile(ctx, tool, downloadedFile(tool, workspace));
      record(samples, `${tool}/${link}`, sample, runs);
      if (tool === 'action' && run === runs && options.keepLastAction) kept = workspace;
      else rmSync(workspace, { recursive: true, force: true });
    }
  }
  return kept;
}

/** Re-runs the action on a destination it has just filled: it must download nothing. */
async function measureRerun(
  ctx: Context,
  endpoint: string,
  workspace: string,
  samples: Samples,
): Promise<void> {
  for (let run = 1; run <= ctx.config.runs; run++) {
    settle();
    const sample = await withDeadline(timeAction(ctx, endpoint, workspace, true), 60_000, 'Re-run');
    record(samples, 'rerun', sample, ctx.config.runs);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

/** Median wall time of a variant, in seconds. */
function medianSeconds(samples: Samples, key: string): number {
  const list = samples.get(key);
  if (!list || list.length === 0) throw new Error(`no samples for ${key}`);
  return median(list.map((sample) => sample.seconds));
}

/** Highest peak RSS of the action's processes across every run, in KiB. */
function peakRssKiB(samples: Samples, keys: string[]): number {
  const all = keys.flatMap((key) => samples.get(key) ?? []);
  return Math.max(...all.map((sample) => sample.rssKiB ?? 0));
}

const LABELS: Record<Tool, string> = {
  action: 'action bundle (OIDC, 8 × 8 MiB ranges)',
  curl: 'curl, SAS URL (1 connection)',
  sdk: 'SDK `downloadToFile` (in-process)',
};

const fmt = (value: number, digits = 2) => value.toFixed(digits);
const mbOfKiB = (kib: number) => (kib * 1024) / MB;

/** The table: one row per variant, ratios against curl and the SDK on the same link. */
function resultTable(ctx: Context, samples: Samples, throttleLabel: string): string[] {
  const lines = [
    '| Variant | Link | Runs | Time (s, median) | All runs (s) | Throughput (MB/s) | ' +
      'Time ÷ curl | Time ÷ SDK | Peak RSS (MB) |',
    '|---|---|--:|--:|---|--:|--:|--:|--:|',
  ];
  for (const link of ['loopback', 'throttled'] as const) {
    const curl = medianSeconds(samples, `curl/${link}`);
    const sdk = medianSeconds(samples, `sdk/${link}`);
    for (const tool of TOOLS) {
      const key = `${tool}/${link}`;
      const list = samples.get(key) ?? [];
      const time = medianSeconds(samples, key);
      const rss = tool === 'action' ? fmt(mbOfKiB(peakRssKiB(samples, [key])), 0) : '–';
      lines.push(
        `| ${LABELS[tool]} | ${link === 'loopback' ? 'loopback' : throttleLabel} | ` +
          `${list.length} | ${fmt(time)} | ${list.map((s) => fmt(s.seconds)).join(', ')} | ` +
          `${fmt(ctx.blob.size / MB / time, 0)} | ${fmt(time / curl)} | ${fmt(time / sdk)} | ${rss} |`,
      );
    }
  }
  const rerun = samples.get('rerun') ?? [];
  lines.push(
    `| action re-run, nothing changed (cache hit) | loopback | ${rerun.length} | ` +
      `${fmt(medianSeconds(samples, 'rerun'))} | ${rerun.map((s) => fmt(s.seconds)).join(', ')} | ` +
      `– | – | – | ${fmt(mbOfKiB(peakRssKiB(samples, ['rerun'])), 0)} |`,
  );
  return lines;
}

/** The ratios the project targets, each marked PASS or MISS (informational only). */
function targetLines(samples: Samples): string[] {
  const plainRatio =
    medianSeconds(samples, 'action/loopback') / medianSeconds(samples, 'curl/loopback');
  const speedup =
    medianSeconds(samples, 'curl/throttled') / medianSeconds(samples, 'action/throttled');
  const rssMB = mbOfKiB(peakRssKiB(samples, ['action/loopback', 'action/throttled', 'rerun']));
  const rerun = medianSeconds(samples, 'rerun');
  const mark = (pass: boolean) => (pass ? '**PASS**' : '**MISS**');
  const sdkPlain =
    medianSeconds(samples, 'sdk/loopback') / medianSeconds(samples, 'action/loopback');
  const sdkThrottled =
    medianSeconds(samples, 'sdk/throttled') / medianSeconds(samples, 'action/throttled');
  return [
    `- Plain loopback, action time ÷ curl time: **${fmt(plainRatio)}** (target ≤ 1.15) ${mark(plainRatio <= 1.15)}`,
    `- Throttled per connection, curl time ÷ action time: **${fmt(speedup)}×** faster ` +
      `(target ≥ 3.5×) ${mark(speedup >= 3.5)}`,
    `- Action peak RSS (highest of all its runs): **${fmt(rssMB, 0)} MB** (target < 200 MB) ${mark(rssMB < 200)}`,
    `- Re-run with nothing changed: **${fmt(rerun)} s** (target < 1 s) ${mark(rerun < 1)}`,
    `- Also: SDK \`downloadToFile\` time ÷ action time: loopback **${fmt(sdkPlain)}×**, ` +
      `throttled **${fmt(sdkThrottled)}×** (above 1 means the action is faster)`,
  ];
}

/** The machine and the setup, so numbers from different runs can be compared. */
function factLines(ctx: Context, proxyBurst: number): string[] {
  const cpu = os.cpus()[0]?.model ?? 'unknown CPU';
  const curl = execFileSync('curl', ['--version']).toString().split('\n')[0].split(' ').slice(0, 2);
  const version = (name: string) =>
    (
      JSON.parse(readFileSync(require.resolve(`${name}/package.json`), 'utf8')) as {
        version: string;
      }
    ).version;
  const { config, blob } = ctx;
  return [
    `- Date: ${new Date().toISOString()}`,
    `- Machine: nproc ${os.availableParallelism()}, ${cpu}, ${fmt(os.totalmem() / 1024 ** 3, 1)} GiB RAM, ` +
      `${os.type()} ${os.release()}`,
    `- Node ${process.version} (bench and action); Azurite ${version('azurite')} (HTTPS, ` +
      `\`--oauth basic\`, disk persistence); @azure/storage-blob ${version('@azure/storage-blob')}; ` +
      `${curl.join(' ')}`,
    `- Blob: ${blob.size / MiB} MiB (${blob.size.toLocaleString('en-US')} bytes) of random bytes, ` +
      `staged in ${UPLOAD_BLOCK / MiB} MiB blocks; Content-MD5 ` +
      `${config.contentMd5 ? 'stored (the action verifies it too)' : 'not stored (the action computes SHA-256 only)'}`,
    `- Action inputs: defaults (concurrency 8, block-size 8MiB), signed in by OIDC through the ` +
      `GitHub and Entra doubles; bundle \`dist/fetch-model/index.js\``,
    `- Throttle: ${config.throttleBytesPerSecond / MB} MB/s per connection in each direction, ` +
      `burst ${fmt(proxyBurst / 1000, 0)} kB (plain TCP proxy, TLS passed through)`,
    `- Runs: ${config.runs} per loopback variant and for the re-run, ${config.throttledRuns} per ` +
      `throttled variant; the median is reported`,
  ];
}

function noteLines(ctx: Context, samples: Samples): string[] {
  const logged = (key: string) =>
    (samples.get(key) ?? []).flatMap((s) =>
      s.downloadSeconds === undefined ? [] : [s.downloadSeconds],
    );
  const connections = (key: string) => {
    const stats = (samples.get(key) ?? []).flatMap((s) => (s.proxy ? [s.proxy] : []));
    return stats.map((s) => `${s.connections} (at most ${s.peakConcurrent} at once)`).join(', ');
  };
  const inAction = (key: string) => {
    const list = logged(key);
    return list.length
      ? `${fmt(median(list))} s (${fmt(ctx.blob.size / MB / median(list), 0)} MB/s)`
      : 'n/a';
  };
  return [
    '- Times are wall clock. The action row is its whole process, as a runner step: Node start, ' +
      'bundle load, OIDC → Entra token, HEAD, the ranged download with SHA-256 computed while ' +
      'streaming, rename into place and the lock file. The download alone, as the action logs ' +
      `it: loopback ${inAction('action/loopback')}, throttled ${inAction('action/throttled')}.`,
    '- curl and `downloadToFile` do **not** verify the bytes. The benchmark hashes every ' +
      'downloaded file after the clock stops (that hashing, the equivalent of `sha256sum`, is ' +
      'NOT included in any time), and fails on a mismatch.',
    '- The SDK call runs inside the benchmark process (no process start-up), with the account key.',
    `- Connections through the proxy: action ${connections('action/throttled')}; curl ` +
      `${connections('curl/throttled')}; SDK ${connections('sdk/throttled')}.`,
    '- Everything runs on this one machine: Azurite (a single Node process) serves TLS from disk ' +
      'on the same cores the client uses, so loopback numbers are bounded by Azurite, not a network.',
  ];
}

function report(ctx: Context, samples: Samples, proxyBurst: number, s3Setup: string): string {
  const throttleLabel = `${ctx.config.throttleBytesPerSecond / MB} MB/s per connection`;
  return [
    '# action-fetch-model benchmark',
    '',
    ...factLines(ctx, proxyBurst),
    `- S3 rows: ${s3Setup}; the same blob size, uploaded in 8 MiB parts; curl and the SDK use ` +
      'credentials from the same STS double (no stored keys either)',
    '',
    ...resultTable(ctx, samples, throttleLabel),
    ...s3ResultRows(samples, ctx.blob.size, median),
    '',
    '## Targets (informational)',
    '',
    ...targetLines(samples),
    '',
    '## Notes',
    '',
    ...noteLines(ctx, samples),
    '',
  ].join('\n');
}

/** Cleanup steps, run once, newest first, on success, failure or Ctrl-C. */
const cleanups: Array<() => Promise<void> | void> = [];
let cleaning: Promise<void> | undefined;
function cleanUp(): Promise<void> {
  cleaning ??= (async () => {
    for (const step of cleanups.reverse()) {
      try {
        await step();
      } catch (error) {
        console.error(`[bench] cleanup: ${String(error)}`);
      }
    }
  })();
  return cleaning;
}

async function main(): Promise<void> {
  const config = readConfig();
  const scratch = mkdtempSync(path.join(os.tmpdir(), 'bench-fetch-'));
  cleanups.push(() => rmSync(scratch, { recursive: true, force: true }));
  if (config.cpuProfDir) mkdirSync(config.cpuProfDir, { recursive: true });

  const stack = new Stack();
  cleanups.push(() => stack.stop());
  await stack.start({ inMemory: false });
  console.error(`[bench] uploading ${config.sizeBytes / MiB} MiB of random bytes to Azurite`);
  const uploadStarted = performance.now();
  const blob = await uploadModel(stack, config);
  console.error(`[bench] uploaded in ${fmt((performance.now() - uploadStarted) / 1000, 1)} s`);
  const ctx: Context = { stack, blob, config, scratch };
  const samples: Samples = new Map();

  const endpoint = stack.azurite.endpoint;
  const kept = await measureLink(ctx, 'loopback', endpoint, config.runs, samples, {
    keepLastAction: true,
  });
  if (kept === undefined) throw new Error('the last loopback action run left no workspace');
  await measureRerun(ctx, endpoint, kept, samples);
  rmSync(kept, { recursive: true, force: true });

  const proxy = new ThrottleProxy({
    upstreamPort: stack.azurite.port,
    bytesPerSecond: config.throttleBytesPerSecond,
  });
  cleanups.push(() => proxy.stop());
  await proxy.start();
  await measureLink(ctx, 'throttled', proxy.url(endpoint), config.throttledRuns, samples, {
    proxy,
  });

  const s3 = await measureS3({
    sizeBytes: config.sizeBytes,
    runs: config.runs,
    scratch,
    preload: PRELOAD,
    settle,
    runCommand,
    hashFile,
    record: (key, sample, total) => record(samples, key, sample, total),
    fail: (message) => new BenchFailure(message),
  });

  const text = report(ctx, samples, proxy.burst, s3.versions);
  mkdirSync(path.dirname(RESULTS), { recursive: true });
  writeFileSync(RESULTS, text);
  process.stdout.write(text);
  console.error(`[bench] written to ${path.relative(process.cwd(), RESULTS)}`);
}

process.once('SIGINT', () => {
  console.error('[bench] interrupted; cleaning up');
  void cleanUp().then(() => process.exit(130));
});

main()
  .catch((error: unknown) => {
    const prefix = error instanceof BenchFailure ? 'FAILED' : 'error';
    console.error(`[bench] ${prefix}: ${error instanceof Error ? error.message : String(error)}`);
    if (!(error instanceof BenchFailure) && error instanceof Error) console.error(error.stack);
    process.exitCode = 1;
  })
  .finally(() => cleanUp());
