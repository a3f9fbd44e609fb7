import { createHash, randomBytes } from 'node:crypto';
import {
  HashWorkerError,
  InlineHashRunner,
  withHashWorkers,
  WorkerHashRunner,
  WORKER_THRESHOLD,
  type HashRunner,
} from '../../src/common/hash-workers';
import { WORKERS_FAIL_TO_START } from '../support/failing-workers';

/** `data` copied into shared memory, as slabs are. */
function shared(data: Buffer): Buffer {
  const copy = Buffer.from(new SharedArrayBuffer(data.length));
  data.copy(copy);
  return copy;
}

const data = shared(randomBytes(3 * 1024 * 1024 + 5));
const sha256 = createHash('sha256').update(data).digest('hex');

/** Hashes `data` in three updates, each awaited, on `hashes`. */
async function hashData(hashes: HashRunner): Promise<string> {
  const hash = hashes.open('sha256', WORKER_THRESHOLD);
  for (const [start, end] of [
    [0, 1000],
    [1000, 2_000_000],
    [2_000_000, data.length],
  ]) {
    await hash.update(data.subarray(start, end));
  }
  return hash.digest();
}

type WorkerHashOptions = ConstructorParameters<typeof WorkerHashRunner>[1];

describe('WorkerHashRunner', () => {
  it('hashes shared memory on worker threads, two hashes side by side', async () => {
    const runner = new WorkerHashRunner(2);
    try {
      const [a, b] = await Promise.all([hashData(runner), hashData(runner)]);
      expect([a, b]).toEqual([sha256, sha256]);
    } finally {
      await runner.close();
    }
  });

  it('reads only shared memory', async () => {
    const runner = new WorkerHashRunner(1);
    try {
      await expect(runner.open('sha256').update(Buffer.alloc(4))).rejects.toThrow(/shared/);
    } finally {
      await runner.close();
    }
  });

  it('fails with a HashWorkerError, instead of hanging, when a worker dies as it starts', async () => {
    const runner = new WorkerHashRunner(1, WORKERS_FAIL_TO_START);
    try {
      const failed = hashData(runner);
      await expect(failed).rejects.toThrow(HashWorkerError);
      await expect(failed).rejects.toThrow(/^hash worker failed: this worker refuses to start$/);
    } finally {
      await runner.close();
    }
  });

  it('throws a HashWorkerError when a worker cannot be created', async () => {
    const runner = new WorkerHashRunner(1, { execArgv: ['--no-such-node-flag'] });
    try {
      expect(() => runner.open('sha256')).toThrow(HashWorkerError);
      expect(() => runner.open('sha256')).toThrow(/^hash worker could not start: .*execArgv/);
    } finally {
      await runner.close();
    }
  });
});

describe('withHashWorkers', () => {
  /** Hashes `data` through withHashWorkers, noting each runner the work ran on and each fallback. */
  async function hashWithWorkers(workerOptions?: WorkerHashOptions) {
    const runners: HashRunner[] = [];
    const fallbacks: Error[] = [];
    const digest = await withHashWorkers(
      (hashes) => {
        runners.push(hashes);
        return hashData(hashes);
      },
      { workers: 2, workerOptions, onFallback: (error) => fallbacks.push(error) },
    );
    return { digest, runners, fallbacks };
  }

  it('runs the work on worker threads when they start', async () => {
    const { digest, runners, fallbacks } = await hashWithWorkers();
    expect(digest).toBe(sha256);
    expect(runners.map((runner) => runner.constructor)).toEqual([WorkerHashRunner]);
    expect(fallbacks).toEqual([]);
  });

  it.each([
    ['die as they start', WORKERS_FAIL_TO_START, /^hash worker failed: /],
    ['cannot be created', { execArgv: ['--no-such-node-flag'] }, /^hash worker could not start: /],
  ])(
    'runs the work again on this thread when the workers %s, and says why',
    async (_how, workerOptions, reason) => {
      const { digest, runners, fallbacks } = await hashWithWorkers(workerOptions);
      expect(digest).toBe(sha256);
      expect(runners.map((runner) => runner.constructor)).toEqual([
        WorkerHashRunner,
        InlineHashRunner,
      ]);
      expect(fallbacks).toHaveLength(1);
      expect(fallbacks[0]).toBeInstanceOf(HashWorkerError);
      expect(fallbacks[0].message).toMatch(reason);
    },
  );

  it("does not run the work again for any other failure, and reports the last attempt's", async () => {
    let attempts = 0;
    const work = async (hashes: HashRunner) => {
      attempts++;
      await hashData(hashes);
      throw new Error('the bytes are wrong');
    };
    await expect(withHashWorkers(work, { workers: 2 })).rejects.toThrow('the bytes are wrong');
    expect(attempts).toBe(1);
    // After a fallback, the second attempt's own failure is the one reported.
    attempts = 0;
    await expect(withHashWorkers(work, { workerOptions: WORKERS_FAIL_TO_START })).rejects.toThrow(
      'the bytes are wrong',
    );
    expect(attempts).toBe(2);
  });
});
