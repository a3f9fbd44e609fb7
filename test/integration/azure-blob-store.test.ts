import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { readSource } from '../../src/common/body-source';
import { Limiter } from '../../src/common/limiter';
import { MemoryLogger } from '../../src/common/logger';
import type { RetryPolicy } from '../../src/common/retry';
import { AzureBlobStore } from '../../src/fetch-model/azure-blob';
import { downloadObject } from '../../src/fetch-model/download';
import { Azurite } from '../support/azurite';
import { FaultProxy, type Fault, type ProxiedRequest } from '../support/fault-proxy';

const MiB = 1024 * 1024;
const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');
const FAST: RetryPolicy = {
  maxAttempts: 3,
  baseDelayMs: 10,
  maxDelayMs: 20,
  maxRetryAfterMs: 5000,
};

/** Azure's answer when it sheds load: 503 ServerBusy, with its XML error body. */
const serverBusy = (headers: Record<string, string> = {}): Fault => ({
  kind: 'status',
  status: 503,
  headers: { 'x-ms-error-code': 'ServerBusy', 'content-type': 'application/xml', ...headers },
  body:
    '<?xml version="1.0" encoding="utf-8"?><Error><Code>ServerBusy</Code><Message>' +
    'The server is busy.\nRequestId:0f1e2d3c\nTime:2026-11-30T04:00:00.0000000Z</Message></Error>',
});

const isRangedGet = (request: ProxiedRequest) =>
  request.method === 'GET' && request.headers['x-ms-range'] !== undefined;
const isList = (request: ProxiedRequest) => /[?&]comp=list/.test(request.path);

/**
 * The Azure store in this process, on @azure/storage-blob, against the real Azurite through a
 * proxy that injects faults: the SDK sends the requests and parses the answers, while retries
 * happen at one layer only (this project's) and a ranged read's body comes straight from the
 * transport, so the engine sees the network's own errors.
 */
describe('AzureBlobStore on @azure/storage-blob', () => {
  const azurite = new Azurite();
  const model = randomBytes(3 * MiB + 123);
  let proxy: FaultProxy;
  let scratch: string;
  let logger: MemoryLogger;

  beforeAll(async () => {
    await azurite.start();
    const container = await azurite.container('store');
    await container.getBlockBlobClient('model.bin').uploadData(model, { blockSize: MiB });
    await container.getBlockBlobClient('dir/odd name %.txt').uploadData(Buffer.from('odd'));
    proxy = await new FaultProxy(new URL(azurite.endpoint)).start();
  });
  afterAll(async () => {
    await proxy.stop();
    await azurite.stop();
  });
  beforeEach(() => {
    proxy.decide = () => ({ kind: 'pass' });
    proxy.requests.length = 0;
    logger = new MemoryLogger();
    scratch = mkdtempSync(path.join(tmpdir(), 'store-'));
  });
  afterEach(() => rmSync(scratch, { recursive: true, force: true }));

  const store = (options: { idleTimeoutMs?: number } = {}) =>
    new AzureBlobStore({
      endpoint: new URL(proxy.url(azurite.endpoint)),
      container: 'store',
      auth: { kind: 'sas', query: azurite.containerSas('store', 'rl') },
      maxConnections: 4,
      logger,
      retry: FAST,
      ...options,
    });

  const download = async (target: AzureBlobStore) => {
    const object = await target.head({ name: 'model.bin' });
    const file = path.join(scratch, 'model.bin');
    const settings = { blockSize: MiB, windowBytes: 8 * MiB, retry: FAST, md5: false };
    const result = await downloadObject(
      target,
      object,
      file,
      new Limiter(4),
      settings,
      logger,
      () => undefined,
    );
    return { result, bytes: readFileSync(file) };
  };

  it('reads properties, lists by prefix and reads ranges, names with spaces and % included', async () => {
    const target = store();
    const [listed] = await target.list('dir/');
    expect(listed).toEqual(
      expect.objectContaining({
        name: 'dir/odd name %.txt',
        size: 3,
        etag: expect.stringMatching(/^"0x[0-9A-F]+"$/),
        uri: `${proxy.url(azurite.endpoint)}/store/dir/odd%20name%20%25.txt`,
      }),
    );
    const object = await target.head({ name: 'dir/odd name %.txt' });
    expect(object).toEqual(expect.objectContaining({ size: 3, etag: listed.etag }));
    expect(object.lastModified).toBe(listed.lastModified);
    const body = await target.openRange(object, 1, 2);
    expect((await readSource(body)).toString()).toBe('dd');
    const { result, bytes } = await download(target);
    expect(result.sha256).toBe(sha256(model));
    expect(bytes.equals(model)).toBe(true);
  });

  it("retries at one layer only, one request per attempt, waiting the server's Retry-After", async () => {
    const heads: number[] = [];
    proxy.decide = (request) => {
      if (request.method !== 'HEAD') return { kind: 'pass' };
      heads.push(Date.now());
      return heads.length <= 2 ? serverBusy({ 'retry-after': '1' }) : { kind: 'pass' };
    };
    const object = await store().head({ name: 'model.bin' });
    expect(object.size).toBe(model.length);
    // Two refusals and the answer: the SDK did not retry underneath this store's policy.
    expect(heads).toHaveLength(3);
    // Its own retry policy would have tried again at once; this one waits the second asked for.
    expect(heads[1] - heads[0]).toBeGreaterThanOrEqual(950);
    expect(heads[2] - heads[1]).toBeGreaterThanOrEqual(950);
    const retries = logger.lines.filter((line) => line.includes('retrying in'));
    expect(retries).toEqual([
      "Reading properties of 'model.bin': Reading properties of 'model.bin' failed: HTTP 503 " +
        'ServerBusy; retrying in 1000 ms (attempt 2 of 3)',
      "Reading properties of 'model.bin': Reading properties of 'model.bin' failed: HTTP 503 " +
        'ServerBusy; retrying in 1000 ms (attempt 3 of 3)',
    ]);
  });

  it("gives up after the policy's attempts with the service's code and message", async () => {
    proxy.decide = (request) => (isList(request) ? serverBusy() : { kind: 'pass' });
    await expect(store().list('dir/')).rejects.toThrow(
      /^Listing blobs under 'dir\/' failed: HTTP 503 ServerBusy: The server is busy\.$/,
    );
    expect(proxy.requests.filter(isList)).toHaveLength(FAST.maxAttempts);
  });

  it('hands the engine ranged reads that failed with 503s, each tried once per attempt', async () => {
    let refused = 0;
    proxy.decide = (request) =>
      isRangedGet(request) && refused++ < 2 ? serverBusy() : { kind: 'pass' };
    const { result, bytes } = await download(store());
    expect(bytes.equals(model)).toBe(true);
    expect(result.retries).toBe(2);
    // Four ranges and two refusals: the engine retried each, the SDK none.
    expect(proxy.requests.filter(isRangedGet)).toHaveLength(4 + 2);
    expect(
      logger.lines.filter((line) => line.includes('(HTTP 503 ServerBusy); resuming')),
    ).toHaveLength(2);
  });

  it('resumes a range whose body stalls, once the idle timeout passes, naming the timeout', async () => {
    let stalled = false;
    proxy.decide = (request) => {
      if (!isRangedGet(request) || stalled) return { kind: 'pass' };
      stalled = true;
      return { kind: 'stall', afterBytes: 64 * 1024 };
    };
    const { result, bytes } = await download(store({ idleTimeoutMs: 1000 }));
    expect(bytes.equals(model)).toBe(true);
    expect(result.retries).toBe(1);
    // The transport's own error, not a wrapper's "The operation was aborted.".
    expect(logger.lines.join('\n')).toMatch(/interrupted at byte \d+ \(ETIMEDOUT\); resuming/);
    expect(logger.lines.join('\n')).not.toMatch(/aborted/i);
  });

  // A connection cut mid-body is the fault suite's (fetch-model-faults.test.ts), through the
  // bundle: in Jest's sandbox Node's own socket errors are not instances of its Error.
});
