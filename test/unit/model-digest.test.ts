import { createHash } from 'node:crypto';
import { modelDigest } from '../../src/common/model';

describe('modelDigest', () => {
  const a = { path: 'ResNet_152.model', sha256: '1'.repeat(64) };
  const b = { path: 'synset.txt', sha256: '2'.repeat(64) };

  it('is the sha256 of the sorted "path sha256" lines', () => {
    const expected = createHash('sha256')
      .update(`ResNet_152.model ${'1'.repeat(64)}\nsynset.txt ${'2'.repeat(64)}\n`)
      .digest('hex');
    expect(modelDigest([b, a])).toBe(expected);
  });

  it('does not depend on input order, and changes with any file', () => {
    expect(modelDigest([a, b])).toBe(modelDigest([b, a]));
    expect(modelDigest([a, { ...b, sha256: '3'.repeat(64) }])).not.toBe(modelDigest([a, b]));
    expect(modelDigest([a, { ...b, path: 'labels.txt' }])).not.toBe(modelDigest([a, b]));
  });
});
