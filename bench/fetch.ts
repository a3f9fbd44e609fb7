/**
 * Benchmark of action-fetch-model against a real Azurite, in one run: the committed bundle run
 * as the runner runs it, `curl` with a SAS URL and the SDK's `downloadToFile`, first over plain
 * loopback and then through a proxy that caps every connection at 50 MB/s (as Azure caps one
 * connection), a re-run of the action with nothing changed (which re-hashes the file), and a
 * larger blob (4 GiB) for the action and curl. Every variant reports wall time and CPU time
 * (user + system, whole process) per GiB. Prints a Markdown report and writes it to
 * bench/results/fetch.md. Run with `npm run bench:fetch`.
 *
 * Environment: BENCH_SIZE_MIB (1024), BENCH_RUNS (3), BENCH_THROTTLED_RUNS (1),
 * BENCH_THROTTLE_MBPS (50, per connection, 10^6 bytes/s), BENCH_LARGE_MIB (4096; 0 skips the
 * larger blob), BENCH_LARGE_RUNS (1), BENCH_CONTENT_MD5 (1 stores a Content-MD5 on the blob, so
 * the action verifies it too), BENCH_CPU_PROF (a directory: the action's processes write V8 CPU
 * profiles there).
 */
import { execFileSync } from 'node:child_process';
import { createHash, randomFillSync } from 'node:crypto';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { BlobServiceClient } from '@azure/storage-blob';
import { hashFile } from '../src/common/model';
import { errorLines, runAction } from '../test/support/run-action';
import { Stack } from '../test/support/stack';
import {
  cpuPerGiB,
  loggedDownload,
  loggedHashing,
  measureInProcess,
  median,
  readUsage,
  runMeasured,
  USAGE_PRELOAD,
  type Sample as MeasuredSample,
} from './fetch-measure';
import { measureS3, s3ResultRows } from './fetch-s3';
import { ThrottleProxy, type ProxyStats } from './throttle-proxy';

const MiB = 1024 * 1024;
const MB = 1_000_000;
const CONTAINER = 'bench';
const BLOB = 'model.bin';
const LARGE_BLOB = 'model-large.bin';
/** Staged block size of the upload; also bounds the upload's memory (times its concurrency). */
const UPLOAD_BLOCK = 8 * MiB;
const RESULTS = path.join(__dirname, 'results', 'fetch.md');

/** A failure of the thing measured (wrong bytes, an exit code), not a missed target. */
class BenchFailure extends Error {}

interface BenchConfig {
  sizeBytes: number;
  runs: number;
  throttledRuns: number;
  /** Cap of each proxied connection, in bytes per second. */
  throttleBytesPerSecond: number;
  /** Size of the larger blob, 0 for none. */
  largeBytes: number;
  largeRuns: number;
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
    largeBytes:
      (env.BENCH_LARGE_MIB === '0' ? 0 : positiveInteger(env, 'BENCH_LARGE_MIB', 4096)) * MiB,
    largeRuns: positiveInteger(env, 'BENCH_LARGE_RUNS', 1),
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
  name: string;
  size: number;
  sha256: string;
  /** Base64, as Content-MD5 is written. */
  md5: string;
}

/**
 * Uploads `size` random (incompressible) bytes as staged blocks, hashing them on the way, so
 * neither the whole blob nor a temporary file is ever needed: memory stays at a few blocks.
 */
async function uploadModel(
  stack: Stack,
  config: BenchConfig,
  name: string,
  size: number,
): Promise<ModelBlob> {
  const blob = (await stack.azurite.container(CONTAINER)).getBlockBlobClient(name);
  const sha256 = createHash('sha256');
  const md5 = createHash('md5');
  const chunks = randomChunks(size, UPLOAD_BLOCK, (chunk) => {
    sha256.update(chunk);
    md5.update(chunk);
  });
  await blob.uploadStream(Readable.from(chunks, { objectMode: false }), UPLOAD_BLOCK, 4);
  const md5Digest = md5.digest();
  // Azure stores no Content-MD5 for a blob committed from blocks (Azurite computes one anyway);
  // real pipelines often add one (azcopy --put-md5).
  await blob.setHTTPHeaders(config.contentMd5 ? { blobContentMD5: md5Digest } : {});
  return {
    name,
    size,
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
type Link = 'loopback' | 'throttled' | 'large';
const TOOLS: readonly Tool[] = ['action', 'curl', 'sdk'];

/** A measurement, and the traffic through the throttling proxy during it. */
interface Sample extends MeasuredSample {
  proxy?: ProxyStats;
}

/** What every measurement needs: the stack, the blob, the settings and a scratch folder. */
interface Context {
  stack: Stack;
  /** The blob of the main rows. */
  blob: ModelBlob;
  /** The larger blob, when measured. */
  large?: ModelBlob;
  config: BenchConfig;
  scratch: string;
}

/** Where a tool's download of `blob` lands inside its workspace. */
function downloadedFile(tool: Tool, workspace: string, blob: ModelBlob): string {
  return tool === 'action'
    ? path.join(workspace, 'model', blob.name)
    : path.join(workspace, blob.name);
}

/**
 * Runs the committed bundle the way the runner does (OIDC through the doubles), with the usage
 * preload, and checks its exit code, `cache-hit` and the sha256 it reports. The `sha256` input
 * pins the blob, as a workflow that wants re-runs to keep the file does: a staged blob has no
 * stored MD5 to vouch for a file already in place.
 */
async function timeAction(
  ctx: Context,
  blob: ModelBlob,
  endpoint: string,
  workspace: string,
  expectCacheHit: boolean,
): Promise<Sample> {
  const usageFile = path.join(workspace, '.usage');
  const nodeArgs = ['--require', USAGE_PRELOAD];
  if (ctx.config.cpuProfDir) nodeArgs.push('--cpu-prof', `--cpu-prof-dir=${ctx.config.cpuProfDir}`);
  const run = await runAction(
    'fetch-model',
    {
      'blob-endpoint': endpoint,
      container: CONTAINER,
      blobs: blob.name,
      sha256: `${blob.name}=${blob.sha256}`,
      path: path.join(workspace, 'model'),
      ...ctx.stack.identityInputs(),
    },
    { env: { ...ctx.stack.oidc.jobEnv(), BENCH_USAGE_FILE: usageFile }, cwd: workspace, nodeArgs },
  );
  if (run.exitCode !== 0) {
    const why = errorLines(run).join('\n') || run.stderr.slice(-2000) || run.stdout.slice(-2000);
    throw new BenchFailure(`The action exited with ${run.exitCode}:\n${why}`);
  }
  const files = JSON.parse(run.outputs.files ?? '[]') as Array<{ name: string; sha256: string }>;
  const reported = files.find((file) => file.name === blob.name)?.sha256;
  if (reported !== blob.sha256) {
    throw new BenchFailure(`The action reported sha256 ${reported}, the blob is ${blob.sha256}.`);
  }
  if (run.outputs['cache-hit'] !== String(expectCacheHit)) {
    throw new BenchFailure(
      `The action reported cache-hit '${run.outputs['cache-hit']}', expected '${expectCacheHit}'.`,
    );
  }
  return {
    seconds: run.milliseconds / 1000,
    ...readUsage(usageFile),
    downloadSeconds: loggedDownload(run.stdout, blob.name),
    hashSeconds: loggedHashing(run.stdout),
  };
}

/** curl on one connection with a SAS URL; it does not verify what it wrote. */
function timeCurl(
  ctx: Context,
  blob: ModelBlob,
  endpoint: string,
  workspace: string,
): Promise<Sample> {
  const sas = ctx.stack.azurite.containerSas(CONTAINER, 'rl');
  const url = `${endpoint}/${CONTAINER}/${blob.name}?${sas}`;
  const ca = process.env.NODE_EXTRA_CA_CERTS ?? '';
  const file = downloadedFile('curl', workspace, blob);
  return runMeasured('curl', ['--cacert', ca, '-sS', '-f', '-o', file, url], fail);
}

/** The naive SDK call, in this process, authorized by the account key. */
function timeSdk(
  ctx: Context,
  blob: ModelBlob,
  endpoint: string,
  workspace: string,
): Promise<Sample> {
  const client = new BlobServiceClient(endpoint, ctx.stack.azurite.sharedKey)
    .getContainerClient(CONTAINER)
    .getBlobClient(blob.name);
  return measureInProcess(async () => {
    await client.downloadToFile(downloadedFile('sdk', workspace, blob));
  });
}

const fail = (message: string) => new BenchFailure(message);

async function verifyFile(blob: ModelBlob, tool: Tool, file: string): Promise<void> {
  const actual = await hashFile(file);
  if (actual !== blob.sha256) {
    throw new BenchFailure(
      `${tool} wrote bytes with sha256 ${actual}, the blob is ${blob.sha256}.`,
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
  const cpu = sample.cpuSeconds === undefined ? '' : `, CPU ${sample.cpuSeconds.toFixed(2)} s`;
  const rss = sample.rssKiB ? `, peak RSS ${(sample.rssKiB / 1024).toFixed(0)} MiB` : '';
  console.error(
    `[bench] ${key} ${list.length}/${total}: ${sample.seconds.toFixed(2)} s${cpu}${rss}`,
  );
}

/**
 * Measures each of `tools` `runs` times over one link, interleaved (action, curl, SDK, action,
 * ...) so drift on the machine spreads evenly. Every download is checked after the clock
 * stops, then deleted. Returns the last action workspace when asked to keep it (for the re-run).
 */
async function measureLink(
  ctx: Context,
  link: Link,
  endpoint: string,
  runs: number,
  samples: Samples,
  options: {
    blob?: ModelBlob;
    tools?: readonly Tool[];
    proxy?: ThrottleProxy;
    keepLastAction?: boolean;
  } = {},
): Promise<string | undefined> {
  const blob = options.blob ?? ctx.blob;
  // Generous: start-up plus the blob at 4 MB/s, far below any variant's speed.
  const deadlineMs = 60_000 + (blob.size / (4 * MB)) * 1000;
  let kept: string | undefined;
  for (let run = 1; run <= runs; run++) {
    for (const tool of options.tools ?? TOOLS) {
      const workspace = mkdtempSync(path.join(ctx.scratch, `${tool}-${link}-`));
      settle();
      options.proxy?.resetStats();
      const measuring =
        tool === 'action'
          ? timeAction(ctx, blob, endpoint, workspace, false)
          : tool === 'curl'
            ? timeCurl(ctx, blob, endpoint, workspace)
            : timeSdk(ctx, blob, endpoint, workspace);
      const sample: Sample = await withDeadline(measuring, deadlineMs, `${tool} over ${link}`);
      if (options.proxy) sample.proxy = options.proxy.resetStats();
      await verifyFile(blob, tool, downloadedFile(tool, workspace, blob));
      record(samples, `${tool}/${link}`, sample, runs);
      if (tool === 'action' && run === runs && options.keepLastAction) kept = workspace;
      else rmSync(workspace, { recursive: true, force: true });
    }
  }
  return kept;
}

/**
 * Re-runs the action on a destination it has just filled: it must download nothing, and it
 * re-hashes the file to keep it (the time and CPU of that hashing are in the sample).
 */
async function measureRerun(
  ctx: Context,
  endpoint: string,
  workspace: string,
  samples: Samples,
): Promise<void> {
  for (let run = 1; run <= ctx.config.runs; run++) {
    settle();
    const sample = await withDeadline(
      timeAction(ctx, ctx.blob, endpoint, workspace, true),
      60_000,
      'Re-run',
    );
    record(samples, 'rerun', sample, ctx.config.runs);
  }
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

/** The peers measured on the larger blob. */
const LARGE_TOOLS: readonly Tool[] = ['action', 'curl'];

const LABELS: Record<Tool, string> = {
  action: 'action bundle (OIDC, 8 × 8 MiB ranges)',
  curl: 'curl, SAS URL (1 connection)',
  sdk: 'SDK `downloadToFile` (in-process)',
};

const fmt = (value: number, digits = 2) => value.toFixed(digits);
const mbOfKiB = (kib: number) => (kib * 1024) / MB;

const GiB = 1024 ** 3;

/** Median CPU seconds per GiB of a variant, formatted, or a dash. */
function cpuCell(samples: Samples, key: string, sizeBytes: number): string {
  const perGiB = cpuPerGiB(samples.get(key) ?? [], sizeBytes);
  return perGiB === undefined ? '–' : fmt(perGiB);
}

/**
 * The table: one row per variant, ratios against curl and the SDK on the same link, and CPU
 * seconds (user + system, whole process) per GiB. The SDK runs inside the benchmark, so its
 * CPU is the benchmark's, which on the throttled link includes the throttling proxy.
 */
function resultTable(ctx: Context, samples: Samples, throttleLabel: string): string[] {
  const lines = [
    '| Variant | Link | Runs | Time (s, median) | All runs (s) | Throughput (MB/s) | ' +
      'Time ÷ curl | Time ÷ SDK | CPU (s per GiB, median) | Peak RSS (MB) |',
    '|---|---|--:|--:|---|--:|--:|--:|--:|--:|',
  ];
  const row = (
    label: string,
    linkLabel: string,
    key: string,
    size: number,
    peers: { curl?: number; sdk?: number },
  ) => {
    const list = samples.get(key) ?? [];
    const time = medianSeconds(samples, key);
    const rss =
      key.startsWith('action') || key === 'rerun'
        ? fmt(mbOfKiB(peakRssKiB(samples, [key])), 0)
        : '–';
    const ratio = (peer?: number) => (peer === undefined ? '–' : fmt(time / peer));
    lines.push(
      `| ${label} | ${linkLabel} | ${list.length} | ${fmt(time)} | ` +
        `${list.map((s) => fmt(s.seconds)).join(', ')} | ${fmt(size / MB / time, 0)} | ` +
        `${ratio(peers.curl)} | ${ratio(peers.sdk)} | ${cpuCell(samples, key, size)} | ${rss} |`,
    );
  };
  for (const link of ['loopback', 'throttled'] as const) {
    const curl = medianSeconds(samples, `curl/${link}`);
    const sdk = medianSeconds(samples, `sdk/${link}`);
    for (const tool of TOOLS) {
      const linkLabel = link === 'loopback' ? 'loopback' : throttleLabel;
      row(LABELS[tool], linkLabel, `${tool}/${link}`, ctx.blob.size, { curl, sdk });
    }
  }
  if (ctx.large) {
    const curl = medianSeconds(samples, 'curl/large');
    const label = `loopback, ${ctx.large.size / GiB} GiB`;
    for (const tool of LARGE_TOOLS)
      row(LABELS[tool], label, `${tool}/large`, ctx.large.size, { curl });
  }
  const rerun = samples.get('rerun') ?? [];
  const hashing = rerun.flatMap((s) => (s.hashSeconds === undefined ? [] : [s.hashSeconds]));
  lines.push(
    `| action re-run, nothing changed (cache hit; re-hashes the file: median ` +
      `${hashing.length ? fmt(median(hashing)) : '?'} s) | loopback | ${rerun.length} | ` +
      `${fmt(medianSeconds(samples, 'rerun'))} | ${rerun.map((s) => fmt(s.seconds)).join(', ')} | ` +
      `– | – | – | ${cpuCell(samples, 'rerun', ctx.blob.size)} | ` +
      `${fmt(mbOfKiB(peakRssKiB(samples, ['rerun'])), 0)} |`,
  );
  return lines;
}

/** The ratios the project targets, each marked PASS or MISS (informational only). */
function targetLines(ctx: Context, samples: Samples): string[] {
  const ratio = (key: string, peer: string) =>
    medianSeconds(samples, key) / medianSeconds(samples, peer);
  const plainRatio = ratio('action/loopback', 'curl/loopback');
  const speedup = ratio('curl/throttled', 'action/throttled');
  const actionKeys = ['action/loopback', 'action/throttled', 'action/large', 'rerun'];
  const rssMB = mbOfKiB(peakRssKiB(samples, actionKeys));
  const rerun = medianSeconds(samples, 'rerun');
  const rerunHashing = median(
    (samples.get('rerun') ?? []).map((sample) => sample.hashSeconds ?? 0),
  );
  const cpu = cpuPerGiB(samples.get('action/loopback') ?? [], ctx.blob.size) ?? NaN;
  const curlCpu = cpuPerGiB(samples.get('curl/loopback') ?? [], ctx.blob.size) ?? NaN;
  const mark = (pass: boolean) => (pass ? '**PASS**' : '**MISS**');
  const lines = [
    `- Action CPU per verified GiB (loopback, user + system, whole process): **${fmt(cpu)} s** ` +
      `(target ≤ 3.5 s) ${mark(cpu <= 3.5)}; curl spends ${fmt(curlCpu)} s`,
    `- Plain loopback, action time ÷ curl time at ${ctx.blob.size / GiB} GiB: ` +
      `**${fmt(plainRatio)}** (target ≤ 1.5) ${mark(plainRatio <= 1.5)}`,
  ];
  if (ctx.large) {
    const largeRatio = ratio('action/large', 'curl/large');
    const largeCpu = cpuPerGiB(samples.get('action/large') ?? [], ctx.large.size) ?? NaN;
    lines.push(
      `- Plain loopback, action time ÷ curl time at ${ctx.large.size / GiB} GiB: ` +
        `**${fmt(largeRatio)}** (target ≤ 1.1) ${mark(largeRatio <= 1.1)}; action CPU ` +
        `${fmt(largeCpu)} s per GiB`,
    );
  }
  lines.push(
    `- Throttled per connection, curl time ÷ action time: **${fmt(speedup)}×** faster ` +
      `(target ≥ 3.5×) ${mark(speedup >= 3.5)}`,
    `- Action peak RSS (highest of all its runs, every size): **${fmt(rssMB, 0)} MB** ` +
      `(target < 200 MB) ${mark(rssMB < 200)}`,
    `- Re-run with nothing changed: **${fmt(rerun)} s**, of which ${fmt(rerunHashing)} s ` +
      `re-hashing ${ctx.blob.size / GiB} GiB (target < 1 s plus the hashing) ` +
      `${mark(rerun - rerunHashing < 1)}`,
    `- Also: SDK \`downloadToFile\` time ÷ action time: loopback ` +
      `**${fmt(ratio('sdk/loopback', 'action/loopback'))}×**, throttled ` +
      `**${fmt(ratio('sdk/throttled', 'action/throttled'))}×** (above 1 means the action is faster)`,
  );
  return lines;
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
      `staged in ${UPLOAD_BLOCK / MiB} MiB blocks${ctx.large ? `; a second one of ${ctx.large.size / MiB} MiB` : ''}; Content-MD5 ` +
      `${config.contentMd5 ? 'stored (the action verifies it too)' : 'not stored (the action computes SHA-256 only)'}`,
    `- Action inputs: defaults (concurrency 8, block-size 8MiB) and the blob's \`sha256\` (what ` +
      `lets a re-run keep a staged blob, which has no stored MD5), signed in by OIDC through the ` +
      `GitHub and Entra doubles; bundle \`dist/fetch-model/index.js\``,
    `- Throttle: ${config.throttleBytesPerSecond / MB} MB/s per connection in each direction, ` +
      `burst ${fmt(proxyBurst / 1000, 0)} kB (plain TCP proxy, TLS passed through)`,
    `- Runs: ${config.runs} per loopback variant and for the re-run, ${config.throttledRuns} per ` +
      `throttled variant${ctx.large ? `, ${config.largeRuns} per variant on the larger blob` : ''}; ` +
      `the median is reported`,
    `- Load: load average ${os
      .loadavg()
      .map((load) => fmt(load))
      .join(', ')} (1, 5, 15 min) ` +
      `when the report was written; wall times on a loaded machine mean little, CPU seconds ` +
      `hold up better`,
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
      'streaming, rename into place and the state file. The download alone, as the action logs ' +
      `it: loopback ${inAction('action/loopback')}, throttled ${inAction('action/throttled')}.`,
    '- CPU is user + system time of the whole downloading process, every thread included (the ' +
      "action's hash workers, V8's threads): read with a preload at the action's exit, and with " +
      "bash's `times` for curl. The SDK runs inside the benchmark, so its CPU is the " +
      "benchmark's (on the throttled link that includes the throttling proxy). Azurite's CPU " +
      'is in no row.',
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
    ...s3ResultRows(samples, ctx.blob.size),
    '',
    '## Targets (informational)',
    '',
    ...targetLines(ctx, samples),
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
  const blob = await uploadModel(stack, config, BLOB, config.sizeBytes);
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

  if (config.largeBytes > 0) {
    console.error(`[bench] uploading ${config.largeBytes / MiB} MiB of random bytes to Azurite`);
    ctx.large = await uploadModel(stack, config, LARGE_BLOB, config.largeBytes);
    await measureLink(ctx, 'large', endpoint, config.largeRuns, samples, {
      blob: ctx.large,
      tools: LARGE_TOOLS,
    });
    await (await stack.azurite.container(CONTAINER)).getBlobClient(LARGE_BLOB).delete();
  }

  const s3 = await measureS3({
    sizeBytes: config.sizeBytes,
    runs: config.runs,
    scratch,
    settle,
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
