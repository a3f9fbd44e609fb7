import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { Readable } from 'node:stream';
import { streamBody, type BodySource } from '../../src/common/body-source';
import { Limiter } from '../../src/common/limiter';
import { MemoryLogger } from '../../src/common/logger';
import { HttpError } from '../../src/common/http-error';
import { DEFAULT_RETRY } from '../../src/common/retry';
import { downloadObject, partialFiles } from '../../src/fetch-model/download';
import {
  ObjectChangedError,
  type ObjectStore,
  type RemoteObject,
} from '../../src/fetch-model/store';

/**
 * An in-memory store for exercising the engine's scheduling, resume and clean-up logic; the
 * integration tests run the same engine against Azurite.
 */
class MemoryStore implements ObjectStore {
  readonly description = 'memory';
  readonly calls: Array<[number, number]> = [];
  /** Decides what happens to the n-th ranged read. */
  fault: (call: number, start: number) => 'ok' | 'cut' | '503' | 'changed' | 'fatal' = () => 'ok';

  constructor(readonly data: Buffer) {}

  async head(): Promise<RemoteObject> {
    return this.object();
  }
  async list(): Promise<RemoteObject[]> {
    return [this.object()];
  }
  object(): RemoteObject {
    return { name: 'model.bin', size: this.data.length, etag: '"0x1"', uri: 'memory://model.bin' };
  }

  async openRange(_object: RemoteObject, start: number, end: number): Promise<BodySource> {
    const call = this.calls.push([start, end]) - 1;
    const fault = this.fault(call, start);
    if (fault === '503') throw new HttpError('busy', 503, 'ServerBusy', 1);
    if (fault === 'changed') throw new ObjectChangedError(this.object());
    if (fault === 'fatal') throw new HttpError('forbidden', 403, 'AuthorizationFailure');
    const bytes = this.data.subarray(start, end + 1);
    const chunks: Buffer[] = [];
    for (let at = 0; at < bytes.length; at += 1000) chunks.push(bytes.subarray(at, at + 1000));
    // Later ranges answer sooner, so completions arrive out of order.
    const delay = Math.max(0, 20 - call * 3);
    return streamBody(
      Readable.from(
        (async function* () {
          await new Promise((resolve) => setTimeout(resolve, delay));
          for (const [i, chunk] of chunks.entries()) {
            if (fault === 'cut' && i === Math.floor(chunks.length / 2)) {
              throw Object.assign(new Error('read ECONNRESET'), { code: 'ECONNRESET' });
            }
            yield chunk;
          }
        })(),
      ),
    );
  }
}

describe('downloadObject', () => {
  const data = randomBytes(50_000 + 123);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const md5 = createHash('md5').update(data).digest('base64');
  const settings = {
    blockSize: 8192,
    windowBytes: 4 * 8192,
    retry: { ...DEFAULT_RETRY, baseDelayMs: 1 },
    md5: true,
  };
  let dir: string;

  beforeEach(() => (dir = mkdtempSync(path.join(tmpdir(), 'download-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('assembles ranges that finish out of order, with the right digests', async () => {
    const store = new MemoryStore(data);
    const temp = path.join(dir, 'model.part');
    const progress: number[] = [];
    const result = await downloadObject(
      store,
      store.object(),
      temp,
      new Limiter(4),
      settings,
      new MemoryLogger(),
      (n) => progress.push(n),
    );
    expect(result).toMatchObject({ sha256, md5, bytes: data.length, retries: 0 });
    expect(readFileSync(temp).equals(data)).toBe(true);
    expect(progress.reduce((a, b) => a + b, 0)).toBe(data.length);
    expect(store.calls).toHaveLength(Math.ceil(data.length / 8192));
    expect(partialFiles.has(temp)).toBe(true);
    partialFiles.delete(temp);
  });

  it('resumes a dropped range from the bytes it already has', async () => {
    const store = new MemoryStore(data);
    store.fault = (call) => (call === 1 ? 'cut' : call === 3 ? '503' : 'ok');
    const logger = new MemoryLogger();
    const temp = path.join(dir, 'model.part');
    const result = await downloadObject(
      store,
      store.object(),
      temp,
      new Limiter(3),
      settings,
      logger,
      () => undefined,
    );
    expect(result.sha256).toBe(sha256);
    expect(result.retries).toBe(2);
    expect(readFileSync(temp).equals(data)).toBe(true);
    // The resumed request starts where the cut one stopped, not at the range start.
    const resumed = store.calls.find(([start]) => start > 8192 && start < 16384);
    expect(resumed).toBeDefined();
    expect(logger.lines.some((line) => /interrupted at byte/.test(line))).toBe(true);
    partialFiles.delete(temp);
  });

  it.each(['changed', 'fatal'] as const)(
    'removes the temporary file when a range fails (%s)',
    async (fault) => {
      const store = new MemoryStore(data);
      store.fault = (call) => (call === 2 ? fault : 'ok');
      const temp = path.join(dir, 'model.part');
      await expect(
        downloadObject(
          store,
          store.object(),
          temp,
          new Limiter(2),
          settings,
          new MemoryLogger(),
          () => undefined,
        ),
      ).rejects.toThrow(
        fault === 'changed' ? /changed while it was being downloaded/ : /forbidden/,
      );
      expect(existsSync(temp)).toBe(false);
      expect(readdirSync(dir)).toEqual([]);
      expect(partialFiles.has(temp)).toBe(false);
    },
  );

  it('gives up on a range that keeps failing without progress', async () => {
    const store = new MemoryStore(data);
    store.fault = (_call, start) => (start === 0 ? '503' : 'ok');
    const temp = path.join(dir, 'model.part');
    await expect(
      downloadObject(
        store,
        store.object(),
        temp,
        new Limiter(2),
        { ...settings, retry: { ...settings.retry, maxAttempts: 3 } },
        new MemoryLogger(),
        () => undefined,
      ),
    ).rejects.toThrow('busy');
    expect(store.calls.filter(([start]) => start === 0)).toHaveLength(3);
    expect(existsSync(temp)).toBe(false);
  });

  it('writes an empty object without any request', async () => {
    const store = new MemoryStore(Buffer.alloc(0));
    const temp = path.join(dir, 'empty.part');
    const result = await downloadObject(
      store,
      store.object(),
      temp,
      new Limiter(2),
      settings,
      new MemoryLogger(),
      () => undefined,
    );
    expect(result.sha256).toBe(createHash('sha256').digest('hex'));
    expect(store.calls).toHaveLength(0);
    expect(readFileSync(temp)).toHaveLength(0);
    partialFiles.delete(temp);
  });
});
