import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { WorkerHashRunner } from '../../src/common/hash-workers';
import { checkLocalFile, hashLocalFile } from '../../src/fetch-model/local-files';
import { SlabPool } from '../../src/common/slab-pool';
import type { VerifyMd5 } from '../../src/fetch-model/inputs';
import type { RemoteObject } from '../../src/fetch-model/store';

const digest = (algorithm: string, data: Buffer, encoding: 'hex' | 'base64') =>
  createHash(algorithm).update(data).digest(encoding);

describe('checkLocalFile', () => {
  const bytes = randomBytes(3 * 1024 * 1024 + 7);
  const object: RemoteObject = { name: 'm.bin', size: bytes.length, etag: '"e"', uri: 'x' };
  const engine = { hashes: new WorkerHashRunner(2), pool: new SlabPool(1024 * 1024) };
  let dir: string;
  let file: string;

  beforeEach(() => {
    dir = mkdtempSync(path.join(tmpdir(), 'local-'));
    file = path.join(dir, 'm.bin');
    writeFileSync(file, bytes);
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));
  afterAll(() => engine.hashes.close());

  const check = (remote: Partial<RemoteObject>, sha256?: string, verifyMd5: VerifyMd5 = 'auto') =>
    checkLocalFile(file, { ...object, ...remote }, sha256, verifyMd5, engine);

  it("keeps a file matching the 'sha256' input, and reports the sha256 it computed", async () => {
    expect(await check({}, digest('sha256', bytes, 'hex'))).toMatchObject({
      keep: true,
      sha256: digest('sha256', bytes, 'hex'),
      verifiedBy: "the 'sha256' input",
    });
    expect(await check({}, '0'.repeat(64))).toMatchObject({
      keep: false,
      reason: "the local file's bytes do not match the 'sha256' input",
    });
  });

  it("keeps a file matching S3's stored SHA-256 checksum or the stored MD5", async () => {
    expect(await check({ checksumSha256: digest('sha256', bytes, 'base64') })).toMatchObject({
      keep: true,
      verifiedBy: 'the stored SHA-256 checksum',
    });
    const md5 = digest('md5', bytes, 'base64');
    expect(await check({ contentMd5: md5, md5Source: 'ETag (MD5)' })).toMatchObject({
      keep: true,
      sha256: digest('sha256', bytes, 'hex'),
      verifiedBy: 'the ETag (MD5) the service stores',
    });
    expect(await check({ contentMd5: digest('md5', Buffer.from('x'), 'base64') })).toMatchObject({
      keep: false,
      reason: "the local file's bytes do not match the Content-MD5 the service stores",
    });
  });

  it('keeps nothing without a digest from outside the cache, and says why', async () => {
    expect(await check({})).toMatchObject({
      keep: false,
      reason: expect.stringContaining('the service stores no MD5 or SHA-256 for it'),
      hashMilliseconds: 0,
    });
    const md5 = digest('md5', bytes, 'base64');
    expect(await check({ contentMd5: md5 }, undefined, 'off')).toMatchObject({
      keep: false,
      reason: expect.stringContaining('verify-md5 is off'),
    });
  });

  it('downloads again a file of another size, or a missing one, without hashing', async () => {
    expect(await check({ size: bytes.length + 1 }, digest('sha256', bytes, 'hex'))).toEqual({
      keep: false,
      reason: `the local file has ${bytes.length} bytes, the blob ${bytes.length + 1}`,
      hashMilliseconds: 0,
    });
    rmSync(file);
    expect(await check({})).toMatchObject({ keep: false, reason: 'not in place' });
  });

  it('hashes on worker threads, both algorithms side by side, when the size is not given', async () => {
    expect(await hashLocalFile(file, ['sha256', 'md5'], engine)).toEqual({
      sha256: digest('sha256', bytes, 'hex'),
      md5: digest('md5', bytes, 'hex'),
    });
  });

  it('will not hash through a symbolic link', async () => {
    const link = path.join(dir, 'link.bin');
    symlinkSync(file, link);
    await expect(hashLocalFile(link, ['sha256'], engine)).rejects.toMatchObject({ code: 'ELOOP' });
  });
});
