import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { ConfigurationError } from '../../src/common/errors';
import { modelDigest } from '../../src/common/model';
import { resolveModelFiles } from '../../src/build-push/model-files';
import { stageModel } from '../../src/build-push/stage';
import { writeStateFile } from '../support/model-state';

const sha256 = (data: Buffer | string) => createHash('sha256').update(data).digest('hex');

describe('build-push ships exactly the model files it was told about, each checked by its sha256', () => {
  let root: string;
  let model: string;
  const weights = Buffer.alloc(300_000, 3);
  const labels = 'tench\ngoldfish\n';
  /** fetch-model's `files` output for the two files, with absolute paths as it gives them. */
  const filesOutput = () => [
    {
      name: 'models/weights.bin',
      path: path.join(model, 'weights.bin'),
      size: weights.length,
      sha256: sha256(weights),
      etag: '"0x1"',
      uri: 'https://acct.blob.core.windows.net/models/weights.bin',
    },
    {
      name: 'models/labels/synset.txt',
      path: path.join(model, 'labels', 'synset.txt'),
      size: labels.length,
      sha256: sha256(labels),
      etag: '"0x2"',
      uri: 'https://acct.blob.core.windows.net/models/labels/synset.txt',
    },
  ];

  beforeEach(() => {
    root = mkdtempSync(path.join(tmpdir(), 'model-files-'));
    model = path.join(root, 'model');
    mkdirSync(path.join(model, 'labels'), { recursive: true });
    writeFileSync(path.join(model, 'weights.bin'), weights);
    writeFileSync(path.join(model, 'labels', 'synset.txt'), labels);
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  const refusal = async (provenance = filesOutput()) => {
    const error = await resolveModelFiles(model, provenance).then(
      () => undefined,
      (caught: unknown) => caught,
    );
    expect(error).toBeInstanceOf(ConfigurationError);
    return (error as Error).message;
  };

  it('takes the files model-files names, with their sha256s, and their model digest without hashing', async () => {
    chmodSync(path.join(model, 'weights.bin'), 0o755);
    const set = await resolveModelFiles(model, filesOutput());
    expect(set.source).toBe('model-files');
    expect(
      set.files.map((file) => [file.relative, file.size, file.sha256, file.executable]),
    ).toEqual([
      ['labels/synset.txt', labels.length, sha256(labels), false],
      ['weights.bin', weights.length, sha256(weights), true],
    ]);
    expect(set.digest).toBe(
      modelDigest([
        { path: 'weights.bin', sha256: sha256(weights) },
        { path: 'labels/synset.txt', sha256: sha256(labels) },
      ]),
    );
  });

  it("without model-files, takes the files fetch-model's state file names and leaves the state file out", async () => {
    writeStateFile(model);
    const set = await resolveModelFiles(model, undefined);
    expect(set.source).toBe("fetch-model's state file .fetch-model.lock.json");
    expect(set.files.map((file) => file.relative)).toEqual(['labels/synset.txt', 'weights.bin']);
  });

  it('refuses a directory with neither model-files nor a state file naming its files', async () => {
    await expect(resolveModelFiles(model, undefined)).rejects.toThrow(
      /has no fetch-model state file \(\.fetch-model\.lock\.json\) naming its files, and 'model-files' is not set/,
    );
  });

  it('refuses a symbolic link to /etc/passwd, naming it and its target', async () => {
    symlinkSync('/etc/passwd', path.join(model, 'labels', 'passwd'));
    expect(await refusal()).toMatch(
      /does not hold exactly the model model-files describes: symbolic links \(build-push ships no link, it would copy what the link points at\): 'labels\/passwd' → '\/etc\/passwd'/,
    );
  });

  it('refuses a named file that has been replaced by a symbolic link', async () => {
    rmSync(path.join(model, 'weights.bin'));
    symlinkSync('/etc/passwd', path.join(model, 'weights.bin'));
    const message = await refusal();
    expect(message).toContain(
      "symbolic links (build-push ships no link, it would copy what the link points at): 'weights.bin' → '/etc/passwd'",
    );
    expect(message).not.toContain('missing');
  });

  it('refuses a file model-files does not name, and a FIFO', async () => {
    writeFileSync(path.join(model, 'labels', 'extra.txt'), 'not in the set');
    execFileSync('mkfifo', [path.join(model, 'pipe')]);
    const message = await refusal();
    expect(message).toContain("devices, FIFOs or sockets: 'pipe' (FIFO)");
    expect(message).toContain("files model-files does not name: 'labels/extra.txt'");
  });

  it('refuses missing files, other sizes, paths outside the directory and entries without sha256', async () => {
    rmSync(path.join(model, 'labels', 'synset.txt'));
    writeFileSync(path.join(model, 'weights.bin'), 'short');
    const message = await refusal();
    expect(message).toContain("files model-files names that are missing: 'labels/synset.txt'");
    expect(message).toContain(`'weights.bin' (5 bytes, model-files says ${weights.length})`);

    const outside = filesOutput();
    outside[0].path = '/etc/passwd';
    expect(await refusal(outside)).toMatch(
      /model-files names 'models\/weights\.bin' at '\/etc\/passwd', which is not a file inside the model directory/,
    );
    const unhashed = filesOutput();
    unhashed[1].sha256 = 'ab';
    expect(await refusal(unhashed)).toMatch(
      /model-files entry 'models\/labels\/synset\.txt' has sha256 'ab'\. Expected fetch-model's files output/,
    );
  });

  describe('staging into the build context', () => {
    const contexts: string[] = [];
    afterAll(() => contexts.forEach((dir) => rmSync(dir, { recursive: true, force: true })));
    // /dev/shm is another file system than the model's: files are copied there, not linked.
    it.each([
      ['on the same file system (hard links)', () => path.join(root, 'context'), 'linked'],
      ['on another file system (copies)', () => mkdtempSync('/dev/shm/context-'), 'copied'],
    ] as const)('%s checks each file and stages exactly the set', async (_, makeContext, how) => {
      const context = makeContext();
      contexts.push(context);
      mkdirSync(context, { recursive: true });
      const set = await resolveModelFiles(model, filesOutput());
      const staging = await stageModel(context, 'model', set.files);
      expect(staging[how]).toBe(2);
      const staged = path.join(context, 'model');
      expect(readFileSync(path.join(staged, 'weights.bin')).equals(weights)).toBe(true);
      expect(readFileSync(path.join(staged, 'labels', 'synset.txt'), 'utf8')).toBe(labels);
      const sameInode =
        statSync(path.join(staged, 'weights.bin')).ino ===
        statSync(path.join(model, 'weights.bin')).ino;
      expect(sameInode).toBe(how === 'linked');
      await staging.remove();
      expect(existsSync(staged)).toBe(false);

      // The same size, other bytes: refused, and nothing is left in the context.
      const tampered = Buffer.from(weights);
      tampered[123_456] = 4;
      writeFileSync(path.join(model, 'weights.bin'), tampered);
      await expect(stageModel(context, 'model', set.files)).rejects.toThrow(
        new RegExp(
          `^model file 'weights\\.bin' does not match its sha256 in model-files: expected ${sha256(weights)}, read ${sha256(tampered)}\\.`,
        ),
      );
      expect(existsSync(staged)).toBe(false);
      writeFileSync(path.join(model, 'weights.bin'), weights);
    });
  });
});
