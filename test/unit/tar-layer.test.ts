import { execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { resolveModelFiles } from '../../src/build-push/model-files';
import { SLABS_IN_FLIGHT, TarLayer } from '../../src/build-push/oci/tar-layer';
import {
  InlineHashRunner,
  withHashWorkers,
  WorkerHashRunner,
  WORKER_THRESHOLD,
} from '../../src/common/hash-workers';
import { SlabPool } from '../../src/common/slab-pool';
import { WORKERS_FAIL_TO_START } from '../support/failing-workers';
import { writeStateFile } from '../support/model-state';

/** The model's files as build-push ships them: named by fetch-model's state file. */
async function listModelFiles(dir: string) {
  writeStateFile(dir);
  return (await resolveModelFiles(dir, undefined)).files;
}

const sha256Hex = (data: Buffer) => createHash('sha256').update(data).digest('hex');

async function bytesOf(layer: TarLayer, start?: number, end?: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of layer.read(start, end, 1000)) chunks.push(chunk);
  return Buffer.concat(chunks);
}

describe('TarLayer', () => {
  let dir: string;
  let model: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tar-layer-'));
    model = path.join(dir, 'model');
    mkdirSync(path.join(model, 'sub', 'deeper'), { recursive: true });
    writeFileSync(path.join(model, 'weights.bin'), Buffer.alloc(70_001, 7));
    writeFileSync(path.join(model, 'sub', 'deeper', 'labels.txt'), 'tench\ngoldfish\n');
    writeFileSync(path.join(model, 'B-upper.txt'), '');
    writeFileSync(path.join(model, 'run.sh'), '#!/bin/sh\n');
    chmodSync(path.join(model, 'run.sh'), 0o700);
    const long = path.join(model, 'n'.repeat(90), 'm'.repeat(90));
    mkdirSync(long, { recursive: true });
    writeFileSync(path.join(long, 'f'.repeat(120)), 'long name');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('is a tar GNU tar extracts to the same files, under the destination, without fetch-model bookkeeping', async () => {
    const layer = new TarLayer(await listModelFiles(model), '/app/model');
    const bytes = await bytesOf(layer);
    expect(bytes.length).toBe(layer.size);
    expect(layer.size % 512).toBe(0);
    const archive = path.join(dir, 'layer.tar');
    writeFileSync(archive, bytes);
    const out = path.join(dir, 'out');
    mkdirSync(out);
    execFileSync('tar', ['-xf', archive, '-C', out]);
    const extracted = path.join(out, 'app', 'model');
    expect(readFileSync(path.join(extracted, 'weights.bin')).equals(Buffer.alloc(70_001, 7))).toBe(
      true,
    );
    expect(readFileSync(path.join(extracted, 'sub/deeper/labels.txt'), 'utf8')).toBe(
      'tench\ngoldfish\n',
    );
    expect(
      readFileSync(path.join(extracted, 'n'.repeat(90), 'm'.repeat(90), 'f'.repeat(120)), 'utf8'),
    ).toBe('long name');
    const listing = execFileSync('tar', ['-tvf', archive, '--numeric-owner']).toString();
    expect(listing).not.toContain('.fetch-model');
    expect(listing).toMatch(/^drwxr-xr-x 0\/0 +0 1970-01-01 00:00 app\/$/m);
    expect(listing).toMatch(/^-rwxr-xr-x 0\/0 +10 1970-01-01 00:00 app\/model\/run\.sh$/m);
    expect(listing).toMatch(/^-rw-r--r-- 0\/0 +70001 1970-01-01 00:00 app\/model\/weights\.bin$/m);
    const names = listing
      .split('\n')
      .filter(Boolean)
      .map((line) => line.split(/\s+/).slice(5).join(' '));
    // Parent directories first, then entries in byte order.
    expect(names.slice(0, 5)).toEqual([
      'app/',
      'app/model/',
      'app/model/B-upper.txt',
      `app/model/${'n'.repeat(90)}/`,
      `app/model/${'n'.repeat(90)}/${'m'.repeat(90)}/`,
    ]);
  });

  it('gives the same bytes for the same files whatever their timestamps', async () => {
    const first = await bytesOf(new TarLayer(await listModelFiles(model), '/app/model'));
    const later = new Date(Date.now() + 86_400_000);
    execFileSync('touch', ['-d', later.toISOString(), path.join(model, 'weights.bin')]);
    const second = await bytesOf(new TarLayer(await listModelFiles(model), '/app/model'));
    expect(createHash('sha256').update(second).digest('hex')).toBe(
      createHash('sha256').update(first).digest('hex'),
    );
  });

  it('streams any byte range, which is how an upload resumes mid-layer', async () => {
    const layer = new TarLayer(await listModelFiles(model), '/opt/m');
    const whole = await bytesOf(layer);
    for (const [start, end] of [
      [0, 1],
      [511, 513],
      [1000, 60_000],
      [layer.size - 1025, layer.size],
    ]) {
      expect((await bytesOf(layer, start, end)).equals(whole.subarray(start, end))).toBe(true);
    }
  });

  it('fails when a file changes size after it was listed', async () => {
    const layer = new TarLayer(await listModelFiles(model), '/app/model');
    writeFileSync(path.join(model, 'weights.bin'), 'short');
    await expect(bytesOf(layer)).rejects.toThrow(
      "model file 'weights.bin' changed after it was listed (5 bytes, expected 70001)",
    );
  });

  it('checks each file against its sha256 as it streams, and never hands out the bad file whole', async () => {
    const layer = new TarLayer(await listModelFiles(model), '/app/model');
    const whole = await bytesOf(layer);
    expect(layer.verified).toBe(true);
    expect(`sha256:${createHash('sha256').update(whole).digest('hex')}`).toBe(await layer.digest());

    // One byte differs, the size is the same: the layer fails before weights.bin's last chunk.
    const tampered = new TarLayer(await listModelFiles(model), '/app/model');
    const bytes = Buffer.alloc(70_001, 7);
    bytes[69_999] = 8;
    writeFileSync(path.join(model, 'weights.bin'), bytes);
    const handedOut: Buffer[] = [];
    const reading = (async () => {
      for await (const chunk of tampered.read(0, tampered.size, 1000)) handedOut.push(chunk);
    })();
    await expect(reading).rejects.toThrow(
      /^model file 'weights\.bin' does not match its sha256 in fetch-model's state file \.fetch-model\.lock\.json: expected [0-9a-f]{64}, read [0-9a-f]{64}\./,
    );
    const sent = Buffer.concat(handedOut);
    expect(sent.includes(bytes.subarray(69_000, 70_001))).toBe(false);
    expect(tampered.failure?.message).toMatch(/does not match its sha256/);
    expect(tampered.verified).toBe(false);
    // Read again (an upload that resumes): it fails again.
    await expect(bytesOf(tampered, 0, tampered.size)).rejects.toThrow(/does not match its sha256/);
  });

  it('checks a file whose bytes are first read from the middle (a resumed upload)', async () => {
    const layer = new TarLayer(await listModelFiles(model), '/app/model');
    const tail = await bytesOf(layer, 40_000, layer.size);
    expect(tail.length).toBe(layer.size - 40_000);
    // The files before byte 40 000 were not read yet; weights.bin, read from its middle, was.
    expect(layer.verified).toBe(false);
    expect(layer.failure).toBeUndefined();
    await bytesOf(layer, 0, 40_000);
    expect(layer.verified).toBe(true);

    const tampered = new TarLayer(await listModelFiles(model), '/app/model');
    const bytes = Buffer.alloc(70_001, 7);
    bytes[10] = 9; // before the range read first
    writeFileSync(path.join(model, 'weights.bin'), bytes);
    await expect(bytesOf(tampered, 40_000, tampered.size)).rejects.toThrow(
      /model file 'weights\.bin' does not match its sha256/,
    );
  });
});

describe('TarLayer digest on hash worker threads', () => {
  const MiB = 1024 * 1024;
  let dir: string;
  let model: string;
  /** Larger than WORKER_THRESHOLD, so the file's check runs on a worker too, and 11 slabs long. */
  let weights: Buffer;
  beforeAll(() => {
    weights = randomBytes(WORKER_THRESHOLD + 25 * MiB + 17);
  });
  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'tar-layer-workers-'));
    model = path.join(dir, 'model');
    mkdirSync(path.join(model, 'sub'), { recursive: true });
    writeFileSync(path.join(model, 'a-labels.txt'), 'tench\ngoldfish\n');
    writeFileSync(path.join(model, 'weights.bin'), weights);
    writeFileSync(path.join(model, 'sub', 'z.txt'), 'after the big file');
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const wholeLayer = async (layer: TarLayer) => {
    const chunks: Buffer[] = [];
    for await (const chunk of layer.read()) chunks.push(chunk);
    return Buffer.concat(chunks);
  };
  /** One byte of weights.bin changed, near its end: only its sha256 can tell. */
  const tamper = () => {
    const bytes = Buffer.from(weights);
    bytes[bytes.length - 100] ^= 0xff;
    writeFileSync(path.join(model, 'weights.bin'), bytes);
    return bytes;
  };
  /** The error text a mismatch has always had, in full. */
  const mismatch = (bytes: Buffer) =>
    "model file 'weights.bin' does not match its sha256 in fetch-model's state file " +
    `.fetch-model.lock.json: expected ${sha256Hex(weights)}, read ${sha256Hex(bytes)}. ` +
    'Its bytes changed after fetch-model verified them; nothing was shipped. Fetch the model again.';

  it('equals the digest of the bytes read() gives, checks every file, and reuses a few slabs', async () => {
    const files = await listModelFiles(model);
    const expected = `sha256:${sha256Hex(await wholeLayer(new TarLayer(files, '/app/model')))}`;
    const layer = new TarLayer(files, '/app/model');
    const pool = new SlabPool(4 * MiB);
    const runner = new WorkerHashRunner(2);
    try {
      expect(await layer.digest(runner, pool)).toBe(expected);
    } finally {
      await runner.close();
    }
    expect(layer.verified).toBe(true);
    expect(layer.size).toBeGreaterThan(10 * pool.slabSize);
    expect(pool.created).toBeLessThanOrEqual(SLABS_IN_FLIGHT + 1);
    // On this thread, the same.
    expect(await new TarLayer(files, '/app/model').digest(new InlineHashRunner())).toBe(expected);
  });

  it('fails with the mismatch error, and gives no digest, when a file differs from its sha256', async () => {
    const files = await listModelFiles(model);
    const bytes = tamper();
    const layer = new TarLayer(files, '/app/model');
    const fallbacks: Error[] = [];
    const digest = withHashWorkers((hashes) => layer.digest(hashes), {
      workers: 2,
      onFallback: (error) => fallbacks.push(error),
    });
    await expect(digest).rejects.toThrow(mismatch(bytes));
    expect(fallbacks).toEqual([]);
    expect(layer.failure?.message).toBe(mismatch(bytes));
    expect(layer.verified).toBe(false);
    // An upload that reads the layer afterwards fails at once, with the same error.
    await expect(wholeLayer(layer)).rejects.toThrow(mismatch(bytes));
  });

  it('hashes on this thread, with the same checks, when the workers cannot start', async () => {
    const files = await listModelFiles(model);
    const expected = `sha256:${sha256Hex(await wholeLayer(new TarLayer(files, '/app/model')))}`;
    const fallbacks: Error[] = [];
    const options = {
      workers: 2,
      workerOptions: WORKERS_FAIL_TO_START,
      onFallback: (error: Error) => fallbacks.push(error),
    };
    const layer = new TarLayer(files, '/app/model');
    expect(await withHashWorkers((hashes) => layer.digest(hashes), options)).toBe(expected);
    expect(layer.verified).toBe(true);
    expect(fallbacks.map((error) => error.message)).toEqual([
      'hash worker failed: this worker refuses to start',
    ]);

    const bytes = tamper();
    const tampered = new TarLayer(files, '/app/model');
    await expect(withHashWorkers((hashes) => tampered.digest(hashes), options)).rejects.toThrow(
      mismatch(bytes),
    );
    expect(fallbacks).toHaveLength(2);
  });
});
