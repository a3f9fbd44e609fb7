/**
 * How bench/fetch.ts and bench/fetch-s3.ts measure one download: wall time, and CPU time of the
 * whole process that downloads (user + system, every thread), so the report can give CPU
 * seconds per GiB beside the time. CPU seconds hold up on a loaded machine far better than
 * wall time does.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync } from 'node:fs';
import * as path from 'node:path';

/** Preloaded into the action's process; it writes peak RSS and CPU time as the process exits. */
export const USAGE_PRELOAD = path.join(__dirname, 'fetch-usage-preload.cjs');

export interface Sample {
  /** Wall time. */
  seconds: number;
  /** User + system CPU time of the downloading process (for the SDK: the benchmark's own). */
  cpuSeconds?: number;
  /** Peak RSS of the action's process. */
  rssKiB?: number;
  /** The download alone, as the action logs it (without start-up and sign-in). */
  downloadSeconds?: number;
  /** Time the action spent re-hashing files it kept, as it logs it. */
  hashSeconds?: number;
}

/** What the preload wrote for a finished action process. */
export function readUsage(file: string): { rssKiB: number; cpuSeconds: number } {
  if (!existsSync(file)) throw new Error(`the action wrote no usage to ${file}`);
  const usage = JSON.parse(readFileSync(file, 'utf8')) as { maxRssKiB: number; cpuSeconds: number };
  rmSync(file);
  return { rssKiB: usage.maxRssKiB, cpuSeconds: usage.cpuSeconds };
}

/**
 * Runs a command to its end and measures it: wall time, and its CPU time as bash's `times`
 * reports for a finished child. A non-zero exit rejects with `fail(stderr)`.
 */
export function runMeasured(
  command: string,
  args: string[],
  fail: (message: string) => Error,
): Promise<Sample> {
  // `times` prints the shell's and then its children's user and system time, as 0m1.234s.
  const script = '"$@"; status=$?; times >&3; exit $status';
  return new Promise((resolve, reject) => {
    const started = performance.now();
    const child = spawn('bash', ['-c', script, 'bash', command, ...args], {
      stdio: ['ignore', 'ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    let times = '';
    child.stderr!.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    (child.stdio[3] as NodeJS.ReadableStream).on('data', (chunk: Buffer) => (times += chunk));
    child.once('error', reject);
    child.once('close', (code) => {
      const seconds = (performance.now() - started) / 1000;
      if (code !== 0) {
        reject(fail(`${command} exited with ${code}: ${stderr.trim()}`));
        return;
      }
      const children = times.trim().split('\n')[1] ?? '';
      const parts = [...children.matchAll(/(\d+)m([\d.]+)s/g)].map(
        (match) => Number(match[1]) * 60 + Number(match[2]),
      );
      resolve({ seconds, cpuSeconds: parts.length === 2 ? parts[0] + parts[1] : undefined });
    });
  });
}

/** CPU time of this process while `work` runs (for a peer that runs in the benchmark). */
export async function measureInProcess(work: () => Promise<void>): Promise<Sample> {
  const cpu = process.cpuUsage();
  const started = performance.now();
  await work();
  const seconds = (performance.now() - started) / 1000;
  const used = process.cpuUsage(cpu);
  return { seconds, cpuSeconds: (used.user + used.system) / 1e6 };
}

/** The action logs `<file>: <size> in <n> ms (<rate>)` once a file is downloaded. */
export function loggedDownload(stdout: string, file: string): number | undefined {
  const match = new RegExp(`^${escape(file)}: .+? in (\\d+) ms \\(`, 'm').exec(stdout);
  return match ? Number(match[1]) / 1000 : undefined;
}

/** The action logs `(re-hashed <size> in <n> ms` for each file it checks before keeping it. */
export function loggedHashing(stdout: string): number | undefined {
  const times = [...stdout.matchAll(/\(re-hashed .+? in (\d+) ms/g)].map((m) => Number(m[1]));
  return times.length ? times.reduce((a, b) => a + b, 0) / 1000 : undefined;
}

function escape(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  const middle = Math.floor(sorted.length / 2);
  return sorted.length % 2 === 1 ? sorted[middle] : (sorted[middle - 1] + sorted[middle]) / 2;
}

const GiB = 1024 ** 3;

/** Median CPU seconds per GiB of `samples` for a blob of `sizeBytes`, or undefined. */
export function cpuPerGiB(samples: Sample[], sizeBytes: number): number | undefined {
  const cpu = samples.flatMap((sample) =>
    sample.cpuSeconds === undefined ? [] : [sample.cpuSeconds],
  );
  return cpu.length ? median(cpu) / (sizeBytes / GiB) : undefined;
}
