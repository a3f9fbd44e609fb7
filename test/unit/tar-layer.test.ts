import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { resolveModelFiles } from '../../src/build-push/model-files';
import { TarLayer } from '../../src/build-push/oci/tar-layer';
import { writeStateFile } from '../support/model-state';

/** The model's files as build-push ships them: named by fetch-model's state file. */
async function listModelFiles(dir: string) {
  writeStateFile(dir);
  return (await resolveModelFiles(dir, undefined)).files;
}

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
