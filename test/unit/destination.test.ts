import { mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { LOCK_FILE } from '../../src/common/model';
import { prepareDestination } from '../../src/fetch-model/destination';

/** Every entry under `dir`, relative and sorted. */
const entries = (dir: string) => readdirSync(dir, { recursive: true }).map(String).sort();

describe('prepareDestination', () => {
  let root: string;
  let dest: string;
  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'destination-'));
    dest = path.join(root, 'model');
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const write = (relative: string, text = 'x') => {
    mkdirSync(path.dirname(path.join(dest, relative)), { recursive: true });
    writeFileSync(path.join(dest, relative), text);
  };

  it('creates a missing destination and removes nothing', async () => {
    expect(await prepareDestination(dest, new Set(['a/b.bin']))).toEqual([]);
    expect(entries(dest)).toEqual([]);
  });

  it("keeps requested files, their folders and the state file; removes the rest, a directory's contents with it", async () => {
    write(LOCK_FILE, '{}');
    write('weights/v2/model.bin');
    write('weights/v2/stray.bin');
    write('weights/old/model.bin');
    write(`weights/v2/${LOCK_FILE}`, '{}');
    write('labels.txt/inside.txt'); // a directory where a requested file goes
    write('synset'); // a file where a requested folder goes
    write('synset2/.keep');
    const removed = await prepareDestination(
      dest,
      new Set(['weights/v2/model.bin', 'labels.txt', 'synset/x.txt']),
    );
    expect(removed.sort()).toEqual(
      [
        'weights/v2/stray.bin',
        'weights/old/',
        'weights/old/model.bin',
        `weights/v2/${LOCK_FILE}`,
        'labels.txt/',
        'labels.txt/inside.txt',
        'synset',
        'synset2/',
        'synset2/.keep',
      ].sort(),
    );
    expect(entries(dest)).toEqual([LOCK_FILE, 'weights', 'weights/v2', 'weights/v2/model.bin']);
  });

  it('removes its own partial files even without a state file, and nothing else', async () => {
    write('.model.bin.partial-0badc0de');
    expect(await prepareDestination(dest, new Set(['model.bin']))).toEqual([
      '.model.bin.partial-0badc0de',
    ]);
    write('notes.md');
    await expect(prepareDestination(dest, new Set(['model.bin']))).rejects.toThrow(
      /holds 'notes.md', which fetch-model did not write/,
    );
    expect(entries(dest)).toEqual(['notes.md']);
  });

  it('refuses a link anywhere below, even inside a folder it would remove, and touches nothing', async () => {
    write(LOCK_FILE, '{}');
    write('old/stray.bin');
    symlinkSync('/etc/hosts', path.join(dest, 'old', 'hosts'));
    await expect(prepareDestination(dest, new Set(['model.bin']))).rejects.toThrow(
      /holds 'old\/hosts' \(a symbolic link\)/,
    );
    expect(entries(dest)).toEqual([LOCK_FILE, 'old', 'old/hosts', 'old/stray.bin']);
  });

  it('names at most ten entries and counts the rest', async () => {
    mkdirSync(dest);
    for (let i = 0; i < 12; i++) symlinkSync('/etc/hosts', path.join(dest, `link${i}`));
    await expect(prepareDestination(dest, new Set(['model.bin']))).rejects.toThrow(
      / and 2 more\. fetch-model refuses symbolic links/,
    );
  });

  it('refuses a destination that is a link or not a directory', async () => {
    mkdirSync(path.join(root, 'real'));
    symlinkSync(path.join(root, 'real'), dest);
    await expect(prepareDestination(dest, new Set())).rejects.toThrow(/is a symbolic link/);
    rmSync(dest);
    writeFileSync(dest, 'a file');
    await expect(prepareDestination(dest, new Set())).rejects.toThrow(/is not a directory/);
  });
});
