/**
 * Fixed-size buffers reused for the whole download. Bytes from the network are copied into a
 * slab, and the slab is what gets written to the file and hashed; it returns to the pool when
 * both are done. Reusing a few warm buffers, instead of writing and hashing each TLS record's
 * fresh one, spares the allocator and the garbage collector, and the kernel copies into the
 * page cache from pages it has mapped before (on virtual machines a first touch of a fresh page
 * by the kernel is expensive). Slabs are SharedArrayBuffers, so hash workers read them in
 * place.
 */
export class SlabPool {
  private readonly free: Buffer[] = [];
  /** Slabs ever created: the pool's memory is this times `slabSize`. */
  created = 0;

  constructor(readonly slabSize: number) {
    if (!Number.isSafeInteger(slabSize) || slabSize < 1) {
      throw new RangeError(`invalid slab size ${slabSize}`);
    }
  }

  acquire(): Buffer {
    const slab = this.free.pop();
    if (slab) return slab;
    this.created++;
    return Buffer.from(new SharedArrayBuffer(this.slabSize));
  }

  release(slab: Buffer): void {
    this.free.push(slab);
  }
}
