import * as v8 from 'node:v8';
import * as vm from 'node:vm';

/**
 * Collects V8's young generation every few MiB of download. Node hands every TLS record and
 * every HTTP body chunk to JavaScript in a freshly malloc'd buffer (two per 16 KiB); V8 frees
 * them only when it next collects, so between collections the C heap grows by tens of MiB of
 * dead buffers, glibc gives that memory back to the kernel, and the next buffers fault it in
 * again. Measured on this project's 2-core machine, 1 GiB from Azurite spent about 0.8 s in
 * page faults that way; a young-generation collection every 4 MiB (about a millisecond each,
 * the young generation holding little) halved them, and lowered peak RSS by about 25 MB.
 *
 * Collections this frequent have a cost in the old generation: whatever a request holds while
 * it waits for its answer outlives two of them and is promoted (for the storage SDK's pipeline
 * of a ranged read, tens of KiB), and V8 lets that garbage pile up before it collects the old
 * generation on its own: 1 GiB from Azurite left about 4 MiB of it, 4 GiB took the old
 * generation from 12 MiB live to 36 MiB and peak RSS from about 175 to 193 MiB. So every 64 MiB
 * the old generation's size is compared with what it was after the last full collection, and
 * when it has grown by 4 MiB a full collection (about 25 ms here, with ~12 MiB live) takes the
 * place of the young one: roughly once per GiB when downloading from Azure, rarely otherwise.
 *
 * `gc` is exposed through V8's own flag in a separate context, so the action's global scope
 * is unchanged; if this Node does not offer it, collection is left to V8.
 */
export class YoungGenerationCollector {
  private sinceLast = 0;
  private collections = 0;
  /** The old generation's size after the last full collection; measured at the next look. */
  private oldBaseline?: number;

  private constructor(
    private readonly collect: (kind: 'young' | 'full') => void,
    readonly everyBytes: number,
  ) {}

  static create(everyBytes = 4 * 1024 * 1024): YoungGenerationCollector | undefined {
    try {
      v8.setFlagsFromString('--expose-gc');
      const gc = vm.runInNewContext('gc') as unknown;
      if (typeof gc !== 'function') return undefined;
      // `gc()`: measured here, `gc({ type: 'major' })` left the old generation growing.
      return new YoungGenerationCollector(
        (kind) => (kind === 'full' ? gc() : gc({ type: 'minor' })),
        everyBytes,
      );
    } catch {
      return undefined;
    }
  }

  /** Counts `bytes` received; collects once every `everyBytes`. */
  received(bytes: number): void {
    this.sinceLast += bytes;
    if (this.sinceLast < this.everyBytes) return;
    this.sinceLast = 0;
    this.collect(this.oldGenerationGrew() ? 'full' : 'young');
  }

  /**
   * Whether the old generation grew by OLD_GROWTH since the last full collection, looking once
   * every LOOK_EVERY collections. Right after a full collection V8 is still sweeping and its
   * sizes lag, so the baseline is taken at the next look instead.
   */
  private oldGenerationGrew(): boolean {
    if (++this.collections % LOOK_EVERY !== 0) return false;
    const used = oldSpaceUsed();
    if (this.oldBaseline === undefined) {
      this.oldBaseline = used;
      return false;
    }
    if (used - this.oldBaseline < OLD_GROWTH) return false;
    this.oldBaseline = undefined;
    return true;
  }
}

/** Young collections between looks at the old generation (64 MiB of download at 4 MiB each). */
const LOOK_EVERY = 16;
/** Growth of the old generation that earns a full collection. */
const OLD_GROWTH = 4 * 1024 * 1024;

function oldSpaceUsed(): number {
  const old = v8.getHeapSpaceStatistics().find((space) => space.space_name === 'old_space');
  return old?.space_used_size ?? 0;
}
