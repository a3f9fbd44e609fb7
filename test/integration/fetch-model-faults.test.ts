import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { FaultProxy, type Fault, type ProxiedRequest } from '../support/fault-proxy';
import { errorLines, runAction } from '../support/run-action';
import { Stack } from '../support/stack';
import { entries, expectCleanFailureWhenUnavailable } from '../support/fetch-scenarios';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const MiB = 1024 * 1024;

/** A ranged read of the model blob (not a HEAD, a list or a token request). */
const isRangedGet = (request: ProxiedRequest) =>
  request.method === 'GET' &&
  request.path.includes('/faults/model.bin') &&
  request.headers['x-ms-range'] !== undefined;

/**
 * The download's fault handling against the real Azurite, through a proxy that drops
 * connections mid-body, answers 503s, or lets the test overwrite the blob between the action
 * reading its properties and reading its bytes.
 */
describe('fetch-model through a faulty network', () => {
  const stack = new Stack();
  const model = randomBytes(6 * MiB + 333);
  let proxy: FaultProxy;
  let workspace: string;

  beforeAll(async () => {
    await stack.start();
    const container = await stack.azurite.container('faults');
    await container.getBlockBlobClient('model.bin').uploadData(model, { blockSize: 2 * MiB });
    proxy = await new FaultProxy(new URL(stack.azurite.endpoint)).start();
  });
  afterAll(async () => {
    await proxy.stop();
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
        'blob-endpoint': proxy.url(stack.azurite.endpoint),
        container: 'faults',
        blobs: 'model.bin',
        'block-size': '1MiB',
        concurrency: '4',
        ...stack.identityInputs(),
        ...inputs,
      },
      { env: stack.oidc.jobEnv(), cwd: workspace },
    );

  it('resumes ranges cut mid-transfer and still gets every byte right', async () => {
    const cut = new Set<string>();
    proxy.decide = (request) => {
      // Cut the first read of every range after 100 KiB; the resumed read (same end, later
      // start) goes through.
      const end = String(request.headers['x-ms-range']).split('-')[1];
      if (!isRangedGet(request) || cut.has(end)) return { kind: 'pass' };
      cut.add(end);
      return { kind: 'cut', afterBytes: 100 * 1024 };
    };
    const run = await fetch();
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);
    expect(cut.size).toBe(7);
    const file = path.join(workspace, 'model', 'model.bin');
    expect(sha256(readFileSync(file))).toBe(sha256(model));
    expect(JSON.parse(run.outputs.files)[0].sha256).toBe(sha256(model));
    // The network's own error, as the transport saw it, not an SDK wrapper's.
    expect(run.stdout).toMatch(/interrupted at byte \d+ \(ECONNRESET\); resuming/);
    expect(run.stdout).not.toMatch(/operation was aborted/i);
    // A resumed read asks only for the bytes it lacks.
    const starts = proxy.requests
      .filter(isRangedGet)
      .map((request) => Number(/^bytes=(\d+)-/.exec(String(request.headers['x-ms-range']))![1]));
    const resumed = starts.filter((start) => start % MiB !== 0);
    expect(resumed.length).toBeGreaterThan(0);
    expect(run.summary).toContain('range(s) resumed');
  });

  it('rides out 503s with Retry-After on HEAD and ranged reads', async () => {
    let heads = 0;
    let gets = 0;
    proxy.decide = (request): Fault => {
      if (request.method === 'HEAD' && heads++ < 2) {
        return { kind: 'status', status: 503, headers: { 'retry-after': '1' } };
      }
      if (isRangedGet(request) && gets++ < 3) {
        return { kind: 'status', status: 503, headers: { 'x-ms-error-code': 'ServerBusy' } };
      }
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

  it('detects a blob overwritten during the download and writes nothing', async () => {
    const container = await stack.azurite.container('faults');
    const blob = container.getBlockBlobClient('model.bin');
    let overwritten = false;
    proxy.decide = (request) => {
      if (!isRangedGet(request) || overwritten) return { kind: 'pass' };
      overwritten = true;
      return {
        kind: 'hold',
        before: async () => {
          await blob.uploadData(randomBytes(model.length));
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
      await blob.uploadData(model, { blockSize: 2 * MiB });
    }
  });
});
