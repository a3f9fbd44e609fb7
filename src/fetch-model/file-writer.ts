import type { promises as fs } from 'node:fs';

interface QueuedWrite {
  data: Buffer;
  position: number;
  done: () => void;
}

/**
 * Positional writes to one file, one call at a time in arrival order. Buffered writes to one
 * file serialize on its inode lock anyway; queueing them here, instead of handing each to its
 * own thread-pool thread, spares threads spinning on that lock and a wake-up per write. Callers
 * stop reading (`full`, `whenRoom`) while the queue holds more than `maxQueuedBytes`.
 */
export class FileWriter {
  private readonly queue: QueuedWrite[] = [];
  /** Bytes queued or being written. */
  private queuedBytes = 0;
  private writing = false;
  private failure: { error: unknown } | undefined;
  private idleWaiters: Array<() => void> = [];
  private roomWaiters: Array<() => void> = [];

  constructor(
    private readonly file: fs.FileHandle,
    readonly maxQueuedBytes: number,
  ) {}

  get full(): boolean {
    return this.queuedBytes >= this.maxQueuedBytes;
  }

  /** Queues `data` for `position`; `done` runs once it is written (or the write failed). */
  write(data: Buffer, position: number, done: () => void): void {
    this.queue.push({ data, position, done });
    this.queuedBytes += data.length;
    if (!this.writing) void this.writeNext();
  }

  /** Calls `callback` once the queue has room again (at once if it has). */
  whenRoom(callback: () => void): void {
    if (this.full) this.roomWaiters.push(callback);
    else callback();
  }

  /** Throws the first write error, if any. */
  check(): void {
    if (this.failure) throw this.failure.error;
  }

  /** Resolves once every queued write has finished; throws the first write error. */
  async drain(): Promise<void> {
    if (this.writing) await new Promise<void>((resolve) => this.idleWaiters.push(resolve));
    this.check();
  }

  private async writeNext(): Promise<void> {
    this.writing = true;
    for (let item = this.queue.shift(); item; item = this.queue.shift()) {
      if (!this.failure) {
        try {
          await writeFully(this.file, item.data, item.position);
        } catch (error) {
          this.failure = { error };
        }
      }
      this.queuedBytes -= item.data.length;
      item.done();
      if (!this.full && this.roomWaiters.length > 0) {
        for (const callback of this.roomWaiters.splice(0)) callback();
      }
    }
    this.writing = false;
    for (const resolve of this.idleWaiters.splice(0)) resolve();
  }
}

async function writeFully(file: fs.FileHandle, data: Buffer, position: number): Promise<void> {
  for (let offset = 0; offset < data.length;) {
    const { bytesWritten } = await file.write(
      data,
      offset,
      data.length - offset,
      position + offset,
    );
    offset += bytesWritten;
  }
}
