import { createHash, type Hash } from 'node:crypto';

/**
 * Hashes a file whose byte ranges arrive out of order, without reading it back: chunks at the
 * hash position are hashed at once, later ones wait in memory until the gap before them fills.
 * Callers bound that memory by not starting a range more than a window ahead (`reached`).
 */
export class OrderedDigest {
  private position = 0;
  private readonly pending = new Map<number, Buffer>();
  private readonly hashes: Hash[];
  private waiters: Array<{ offset: number; resolve: () => void }> = [];

  constructor(readonly algorithms: readonly string[]) {
    this.hashes = algorithms.map((algorithm) => createHash(algorithm));
  }

  /** Bytes hashed so far, all from offset 0 without a gap. */
  get hashedBytes(): number {
    return this.position;
  }

  /** Bytes received but waiting for an earlier gap to fill. */
  get bufferedBytes(): number {
    let total = 0;
    for (const chunk of this.pending.values()) total += chunk.length;
    return total;
  }

  /** Accepts `chunk` found at `offset` of the file. Bytes already hashed are ignored. */
  push(offset: number, chunk: Buffer): void {
    if (chunk.length === 0) return;
    if (offset < this.position) {
      if (offset + chunk.length <= this.position) return;
      chunk = chunk.subarray(this.position - offset);
      offset = this.position;
    }
    if (offset > this.position) {
      this.pending.set(offset, chunk);
      return;
    }
    this.consume(chunk);
    for (let next = this.pending.get(this.position); next; next = this.pending.get(this.position)) {
      this.pending.delete(this.position);
      this.consume(next);
    }
    this.wake();
  }

  /** Resolves once every byte before `offset` has been hashed. */
  reached(offset: number): Promise<void> {
    if (this.position >= offset) return Promise.resolve();
    return new Promise((resolve) => this.waiters.push({ offset, resolve }));
  }

  /** Hex digests in the order of `algorithms`; call once, after the last byte. */
  digests(): string[] {
    return this.hashes.map((hash) => hash.digest('hex'));
  }

  private consume(chunk: Buffer): void {
    for (const hash of this.hashes) hash.update(chunk);
    this.position += chunk.length;
  }

  private wake(): void {
    if (this.waiters.length === 0) return;
    const ready = this.waiters.filter((waiter) => waiter.offset <= this.position);
    this.waiters = this.waiters.filter((waiter) => waiter.offset > this.position);
    for (const waiter of ready) waiter.resolve();
  }
}
