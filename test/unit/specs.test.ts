import { ConfigurationError } from '../../src/common/errors';
import {
  parseBlobSpec,
  parseExpectedDigests,
  quoteEtag,
  sameEtag,
} from '../../src/fetch-model/specs';

describe('parseBlobSpec', () => {
  it('takes a plain name', () => {
    expect(parseBlobSpec('ResNet_152.model')).toEqual({ name: 'ResNet_152.model' });
  });

  it('takes each kind of pin', () => {
    expect(parseBlobSpec('m.bin@version=2024-05-01T10:20:30.1234567Z')).toEqual({
      name: 'm.bin',
      pin: { kind: 'version', value: '2024-05-01T10:20:30.1234567Z' },
    });
    expect(parseBlobSpec('m.bin@snapshot=2024-05-01T10:20:30.1234567Z').pin?.kind).toBe('snapshot');
    expect(parseBlobSpec('dir/m.bin@etag="0x8DC1"')).toEqual({
      name: 'dir/m.bin',
      pin: { kind: 'etag', value: '0x8DC1' },
    });
  });

  it('keeps an @ that is not a pin as part of the name', () => {
    expect(parseBlobSpec('team@corp/model.bin')).toEqual({ name: 'team@corp/model.bin' });
    expect(parseBlobSpec('a@b.bin@etag=0x1').name).toBe('a@b.bin');
  });

  it.each([
    ['m.bin@tag=v1', /Invalid pin '@tag='.*NAME@version=<versionId>/],
    ['m.bin@version=', /Empty version/],
    ['m.bin@snapshot=yesterday', /Invalid snapshot 'yesterday'.*timestamp/],
    ['@etag=0x1', /Missing blob name/],
  ])('refuses %s with a message naming the expected form', (entry, message) => {
    expect(() => parseBlobSpec(entry)).toThrow(ConfigurationError);
    expect(() => parseBlobSpec(entry)).toThrow(message);
  });
});

describe('sameEtag', () => {
  it('ignores quotes and weak markers', () => {
    expect(sameEtag('"0x8DC1"', '0x8DC1')).toBe(true);
    expect(sameEtag('W/"abc"', '"abc"')).toBe(true);
    expect(sameEtag('"0x8DC1"', '"0x8DC2"')).toBe(false);
  });
});

describe('parseExpectedDigests', () => {
  const hex = 'a'.repeat(64);
  it('reads NAME=HEX lines, lower-casing the digest', () => {
    expect(
      parseExpectedDigests([`model.bin=${hex.toUpperCase()}`, `dir/labels.txt = ${hex}`]),
    ).toEqual(
      new Map([
        ['model.bin', hex],
        ['dir/labels.txt', hex],
      ]),
    );
  });
  it('refuses a short digest', () => {
    expect(() => parseExpectedDigests(['model.bin=abc'])).toThrow(/Expected NAME=HEX/);
  });
});

describe('quoteEtag', () => {
  it('quotes a bare ETag from List Blobs and leaves quoted or weak ones alone', () => {
    expect(quoteEtag('0x8DC1')).toBe('"0x8DC1"');
    expect(quoteEtag('"0x8DC1"')).toBe('"0x8DC1"');
    expect(quoteEtag('W/"abc"')).toBe('W/"abc"');
  });
});
