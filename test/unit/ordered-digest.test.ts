import { createHash, randomBytes } from 'node:crypto';
import { OrderedDigest } from '../../src/fetch-model/ordered-digest';

describe('OrderedDigest', () => {
  const data = randomBytes(10_000);
  const sha256 = createHash('sha256').update(data).digest('hex');
  const md5 = createHash('md5').update(data).digest('hex');

  it('hashes chunks pushed out of order as if they came in order', () => {
    const digest = new OrderedDigest(['sha256', 'md5']);
    const chunks = [0, 1000, 2500, 4000, 7000].map((start, i, all) => ({
      start,
      bytes: data.subarray(start, all[i + 1] ?? data.length),
    }));
    for (const i of [3, 1, 4, 0, 2]) digest.push(chunks[i].start, chunks[i].bytes);
    expect(digest.hashedBytes).toBe(data.length);
    expect(digest.bufferedBytes).toBe(0);
    expect(digest.digests()).toEqual([sha256, md5]);
  });

  it('ignores bytes it has already hashed (a resumed range)', () => {
    const digest = new OrderedDigest(['sha256']);
    digest.push(0, data.subarray(0, 6000));
    digest.push(4000, data.subarray(4000, 8000));
    digest.push(8000, data.subarray(8000));
    expect(digest.digests()).toEqual([sha256]);
  });

  it('resolves waiters once the hash position passes them', async () => {
    const digest = new OrderedDigest(['sha256']);
    let reached = false;
    const waiting = digest.reached(5000).then(() => (reached = true));
    digest.push(5000, data.subarray(5000));
    await Promise.resolve();
    expect(reached).toBe(false);
    expect(digest.bufferedBytes).toBe(5000);
    digest.push(0, data.subarray(0, 5000));
    await waiting;
    expect(reached).toBe(true);
  });
});
