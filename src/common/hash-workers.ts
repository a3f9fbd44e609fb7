import { createHash, type Hash } from 'node:crypto';
import * as os from 'node:os';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/** What a caller may set of each hash worker's options. */
type HashWorkerOptions = Pick<WorkerOptions, 'execArgv'>;

/**
 * Hashing off the main thread, for both actions. The main thread moves bytes into slabs (from
 * the network in fetch-model, from model files in build-push); the digests run on worker
 * threads, so on a runner with more than one core they cost little time on the critical path,
 * and two digests of the same bytes (fetch-model's SHA-256 and MD5, build-push's file check and
 * layer digest) run side by side. Slabs live in SharedArrayBuffers: a worker reads the very
 * bytes the main thread wrote, nothing is copied or transferred.
 */

/** A hash fed in order, one slab at a time. */
export interface IncrementalHash {
  /**
   * Adds `view` (which must stay unchanged until the promise settles) and resolves once it
   * has been hashed.
   */
  update(view: Uint8Array): Promise<void>;
  /** Hex digest; call once, after the last update resolved. */
  digest(): Promise<string>;
}

/** Where hashes run: worker threads, or this thread. */
export interface HashRunner {
  /** A new hash; `size`, when known, is how many bytes it will be fed. */
  open(algorithm: string, size?: number): IncrementalHash;
  /** Stops the workers; hashes opened before must not be used after. */
  close(): Promise<void>;
}

/**
 * The worker's program, evaluated from a string so the bundle needs no second entry file. Each
 * shared buffer is sent once ('memory') and named by a number afterwards: sending a
 * SharedArrayBuffer in every message costs far more than the message itself.
 */
const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { createHash } = require('node:crypto');
const hashes = new Map();
const memory = new Map();
parentPort.on('message', (m) => {
  if (m.op === 'update') {
    hashes.get(m.id).update(new Uint8Array(memory.get(m.memory), m.offset, m.length));
    parentPort.postMessage({ id: m.id });
  } else if (m.op === 'memory') {
    memory.set(m.memory, m.buffer);
  } else if (m.op === 'open') {
    hashes.set(m.id, createHash(m.algorithm));
  } else {
    const digest = hashes.get(m.id).digest('hex');
    hashes.delete(m.id);
    parentPort.postMessage({ id: m.id, digest });
  }
});
`;

/** Numbers for shared buffers, the same for every worker. */
const memoryIds = new WeakMap<SharedArrayBuffer, number>();
let nextMemoryId = 1;
function memoryId(buffer: SharedArrayBuffer): number {
  let id = memoryIds.get(buffer);
  if (id === undefined) {
    id = nextMemoryId++;
    memoryIds.set(buffer, id);
  }
  return id;
}

/** Hashes on this thread; updates resolve at once. */
export class InlineHashRunner implements HashRunner {
  open(algorithm: string): IncrementalHash {
    const hash: Hash = createHash(algorithm);
    return {
      update: async (view) => void hash.update(view),
      digest: async () => hash.digest('hex'),
    };
  }

  async close(): Promise<void> {}
}

/**
 * A hash worker could not start, or stopped: the bytes it was given were not all hashed. Not a
 * verdict on the bytes; the same work can be done again on this thread (`withHashWorkers`).
 */
export class HashWorkerError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'HashWorkerError';
  }
}

interface Pending {
  resolve: (digest: string | undefined) => void;
  reject: (error: Error) => void;
}

/** One worker thread serving many hashes; each hash's messages are answered in order. */
class HashWorker {
  private readonly worker: Worker;
  /** Per hash id, the answers awaited, oldest first. */
  private readonly waiting = new Map<number, Pending[]>();
  private failure?: Error;
  /** Shared buffers this worker has been sent. */
  private readonly known = new Set<number>();
  openHashes = 0;

  constructor(options: HashWorkerOptions) {
    this.worker = new Worker(WORKER_SOURCE, { ...options, eval: true });
    this.worker.unref();
    this.worker.on('message', (message: { id: number; digest?: string }) => {
      const queue = this.waiting.get(message.id);
      const next = queue?.shift();
      if (queue && queue.length === 0) this.waiting.delete(message.id);
      next?.resolve(message.digest);
    });
    const fail = (error: HashWorkerError) => {
      this.failure ??= error;
      for (const queue of this.waiting.values()) for (const pending of queue) pending.reject(error);
      this.waiting.clear();
    };
    this.worker.on('error', (error) =>
      fail(new HashWorkerError(`hash worker failed: ${error.message}`, { cause: error })),
    );
    this.worker.on('exit', (code) =>
      fail(new HashWorkerError(`hash worker exited with code ${code}`)),
    );
  }

  private request(id: number, message: object): Promise<string | undefined> {
    if (this.failure) return Promise.reject(this.failure);
    return new Promise((resolve, reject) => {
      const queue = this.waiting.get(id) ?? [];
      queue.push({ resolve, reject });
      this.waiting.set(id, queue);
      this.worker.postMessage(message);
    });
  }

  open(id: number, algorithm: string): IncrementalHash {
    this.openHashes++;
    this.worker.postMessage({ op: 'open', id, algorithm });
    return {
      update: (view) => {
        const buffer = view.buffer;
        if (!(buffer instanceof SharedArrayBuffer)) {
          return Promise.reject(new TypeError('a worker hash reads shared memory only'));
        }
        const memory = memoryId(buffer);
        if (!this.known.has(memory)) {
          this.known.add(memory);
          this.worker.postMessage({ op: 'memory', memory, buffer });
        }
        const message = {
          op: 'update',
          id,
          memory,
          offset: view.byteOffset,
          length: view.byteLength,
        };
        return this.request(id, message).then(() => undefined);
      },
      digest: async () => {
        this.openHashes--;
        return (await this.request(id, { op: 'digest', id }))!;
      },
    };
  }

  terminate(): Promise<number> {
    return this.worker.terminate();
  }
}

/** Inputs smaller than this are hashed on this thread: starting a worker costs more. */
export const WORKER_THRESHOLD = 16 * 1024 * 1024;

/**
 * Worker threads for hashing, started on first use: one fewer than the cores this process may
 * use, but at least two (so a file's SHA-256 and MD5 run side by side) and at most four. Each
 * new hash goes to the least busy worker. Hashes of inputs known to be small stay on this
 * thread.
 */
export class WorkerHashRunner implements HashRunner {
  private readonly workers: HashWorker[] = [];
  private readonly inline = new InlineHashRunner();
  private nextId = 1;

  constructor(
    readonly size = Math.min(4, Math.max(2, os.availableParallelism() - 1)),
    /** Each worker's Node flags; this process's when not given. */
    private readonly workerOptions: HashWorkerOptions = {},
  ) {}

  /** Throws a HashWorkerError when a needed worker cannot be created. */
  open(algorithm: string, size?: number): IncrementalHash {
    if (size !== undefined && size < WORKER_THRESHOLD) return this.inline.open(algorithm);
    let worker = this.workers.find((candidate) => candidate.openHashes === 0);
    if (!worker && this.workers.length < this.size) {
      try {
        worker = new HashWorker(this.workerOptions);
      } catch (error) {
        throw new HashWorkerError(`hash worker could not start: ${(error as Error).message}`, {
          cause: error,
        });
      }
      this.workers.push(worker);
    }
    worker ??= this.workers.reduce((a, b) => (b.openHashes < a.openHashes ? b : a));
    return worker.open(this.nextId++, algorithm);
  }

  async close(): Promise<void> {
    await Promise.all(this.workers.splice(0).map((worker) => worker.terminate()));
  }
}

/**
 * Runs `work` with its hashes on worker threads; when a worker cannot start or stops, reports
 * why through `onFallback` and runs `work` again from the start on this thread. `work` must be
 * safe to run twice (it reads its input again), and is given no partial result of the first
 * attempt.
 */
export async function withHashWorkers<T>(
  work: (hashes: HashRunner) => Promise<T>,
  options: {
    workers?: number;
    workerOptions?: HashWorkerOptions;
    onFallback?: (error: HashWorkerError) => void;
  } = {},
): Promise<T> {
  const workers = new WorkerHashRunner(options.workers, options.workerOptions);
  try {
    return await work(workers);
  } catch (error) {
    if (!(error instanceof HashWorkerError)) throw error;
    options.onFallback?.(error);
  } finally {
    await workers.close();
  }
  return work(new InlineHashRunner());
}
