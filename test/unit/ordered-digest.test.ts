import { createHash, randomBytes } from 'node:crypto';
import { InlineHashRunner, WorkerHashRunner, type HashRunner } from '../../src/common/hash-workers';
import { OrderedDigest } from '../../src/fetch-model/ordered-digest';

/** `data` copied into shared memory, as the download's slabs are. */
function shared(data: Buffer): Buffer {
  const copy = Buffer.from(new SharedArrayBuffer(data.length));
  data.copy(copy);
  return copy;
}

describe.each([
  ['on this thread', () => new InlineHashRunner()],
  ['on worker threads', () => new WorkerHashRunner(2)],
])('OrderedDigest, hashing %s', (_where, makeRunner: () => HashRunner) => {
  const data = shared(randomBytes(10_000));
  const sha256 = createHash('sha256').update(data).digest('hex');
  const md5 = createHash('md5').update(data).digest('hex');
  let runner: HashRunner;

  beforeEach(() => (runner = makeRunner()));
  afterEach(() => runner.close());

  it('hashes slabs pushed out of order as if they came in order, then releases each', async () => {
    const digest = new OrderedDigest([runner.open('sha256'), runner.open('md5')]);
    const slabs = [0, 1000, 2500, 4000, 7000].map((start, i, all) => ({
      start,
      bytes: data.subarray(start, all[i + 1] ?? data.length),
    }));
    const released: number[] = [];
    for (const i of [3, 1, 4, 0, 2]) {
      digest.push(slabs[i].start, slabs[i].bytes, () => released.push(slabs[i].start));
    }
    expect(digest.bufferedBytes).toBe(0);
    expect(await digest.digests()).toEqual([sha256, md5]);
    expect(digest.hashedBytes).toBe(data.length);
    expect(released).toEqual([0, 1000, 2500, 4000, 7000]);
  });

  it('refuses bytes pushed twice', () => {
    const digest = new OrderedDigest([runner.open('sha256')]);
    digest.push(0, data.subarray(0, 6000));
    expect(() => digest.push(4000, data.subarray(4000, 8000))).toThrow(/already pushed/);
    digest.push(8000, data.subarray(8000));
    expect(() => digest.push(8000, data.subarray(8000))).toThrow(/already pushed/);
  });

  it('resolves waiters once the hashes have finished the bytes before them', async () => {
    const digest = new OrderedDigest([runner.open('sha256')]);
    let reached = false;
    const waiting = digest.reached(5000).then(() => (reached = true));
    digest.push(5000, data.subarray(5000));
    await new Promise((resolve) => setTimeout(resolve, 20));
    expect(reached).toBe(false);
    expect(digest.bufferedBytes).toBe(5000);
    digest.push(0, data.subarray(0, 5000));
    await waiting;
    expect(reached).toBe(true);
    expect(await digest.digests()).toEqual([sha256]);
  });
});

describe('OrderedDigest on a worker hash that cannot run', () => {
  it('fails the waiters instead of hanging', async () => {
    const runner = new WorkerHashRunner(1);
    try {
      const digest = new OrderedDigest([runner.open('no-such-hash')]);
      const waiting = digest.reached(10);
      digest.push(0, shared(Buffer.alloc(10)));
      await expect(waiting).rejects.toThrow();
      await expect(digest.digests()).rejects.toThrow();
    } finally {
      await runner.close();
    }
  });
});
