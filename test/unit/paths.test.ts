import * as path from 'node:path';
import { resolveInside, safeRelativePath } from '../../src/fetch-model/paths';

describe('safeRelativePath', () => {
  it('keeps nested names', () => {
    expect(safeRelativePath('v3/weights/model.bin', 'Blob name')).toBe('v3/weights/model.bin');
  });

  it.each([
    ['../outside.bin', /'\.\.' segment/],
    ['a/../../b', /'\.\.' segment/],
    ['./a', /'\.' segment/],
    ['/etc/passwd', /absolute path/],
    ['C:\\temp\\x', /absolute path/],
    ['a//b', /empty path segment/],
    ['a\0b', /NUL/],
  ])('refuses %j', (name, message) => {
    expect(() => safeRelativePath(name, 'Blob name')).toThrow(message);
  });
});

describe('resolveInside', () => {
  it('resolves under the root', () => {
    expect(resolveInside('/tmp/model', 'a/b.bin')).toBe(path.join('/tmp/model', 'a/b.bin'));
  });
  it('refuses the root itself and anything outside it', () => {
    expect(() => resolveInside('/tmp/model', '.')).toThrow(/outside 'path'/);
    expect(() => resolveInside('/tmp/model', '../model2/x')).toThrow(/outside 'path'/);
  });
});
