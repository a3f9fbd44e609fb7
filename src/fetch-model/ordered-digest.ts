import type { IncrementalHash } from '../common/hash-workers';

/**
 * Hashes a file whose byte ranges arrive out of order, without reading it back: a slab at the
 * hash position goes to the hashes at once, later ones wait in memory until the gap before
 * them fills. Callers bound that memory by not starting a range more than a window ahead
 * (`reached`), which counts bytes the hashes have finished, not merely been given.
 */
export class OrderedDigest {
  /** Bytes handed to the hashes, from offset 0 without a gap. */
  private sent = 0;
  /** Bytes every hash has finished with. */
  private hashed = 0;
  private readonly pending = new Map<number, { data: Uint8Array; done: () => void }>();
  private waiters: Array<{ offset: number; resolve: () => void; reject: (e: unknown) => void }> =
    [];
  private failure: { error: unknown } | undefined;

  constructor(private readonly hashes: readonly IncrementalHash[]) {}

  /** Bytes hashed so far, all from offset 0 without a gap. */
  get hashedBytes(): number {
    return this.hashed;
  }

  /** Bytes received but waiting for an earlier gap to fill. */
  get bufferedBytes(): number {
    let total = 0;
    for (const { data } of this.pending.values()) total += data.length;
    return total;
  }

  /**
   * Accepts `data` found at `offset` of the file. `data` must stay unchanged until `done` is
   * called, once every hash has read it. Each byte must be pushed exactly once.
   */
  push(offset: number, data: Uint8Array, done: () => void = () => undefined): void {
    if (offset < this.sent || this.pending.has(offset)) {
      throw new RangeError(`bytes at ${offset} were already pushed`);
    }
    if (offset > this.sent) {
      this.pending.set(offset, { data, done });
      return;
    }
    this.send(data, done);
    for (let next = this.pending.get(this.sent); next; next = this.pending.get(this.sent)) {
      this.pending.delete(this.sent);
      this.send(next.data, next.done);
    }
  }

  /** Resolves once every byte before `offset` has been hashed; rejects if hashing failed. */
  reached(offset: number): Promise<void> {
    if (this.failure) return Promise.reject(this.failure.error);
    if (this.hashed >= offset) return Promise.resolve();
    return new Promise((resolve, reject) => this.waiters.push({ offset, resolve, reject }));
  }

  /** Hex digests in the order of the hashes; call once, after the last byte was pushed. */
  async digests(): Promise<string[]> {
    await this.reached(this.sent);
    return Promise.all(this.hashes.map((hash) => hash.digest()));
  }

  private send(data: Uint8Array, done: () => void): void {
    this.sent += data.length;
    if (data.length === 0) {
      done();
      return;
    }
    const finished = () => {
      this.hashed += data.length;
      done();
      this.wake();
    };
    const failed = (error: unknown) => {
      this.failure ??= { error };
      done();
      for (const waiter of this.waiters.splice(0)) waiter.reject(error);
    };
    if (this.hashes.length === 1) this.hashes[0].update(data).then(finished, failed);
    else Promise.all(this.hashes.map((hash) => hash.update(data))).then(finished, failed);
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((waiter) => waiter.offset <= this.hashed);
    this.waiters = this.waiters.filter((waiter) => waiter.offset > this.hashed);
    for (const waiter of ready) waiter.resolve();
  }
}
