import { createHash, randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { decodeJwt } from '../servers/jwt';
import { errorLines, runAction, type ActionRun } from '../support/run-action';
import { Stack } from '../support/stack';
import { describeLocalFileScenarios } from '../support/fetch-scenarios';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/** Every file under `dir`, relative, sorted. */
function listFiles(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true, withFileTypes: true })
    .filter((entry) => entry.isFile())
    .map((entry) => path.relative(dir, path.join(entry.parentPath, entry.name)))
    .sort();
}

describe('fetch-model against Azurite, signed in through GitHub OIDC and Entra', () => {
  const stack = new Stack();
  const model = randomBytes(3 * 1024 * 1024 + 517);
  const labels = Buffer.from('n01440764 tench\nn01443537 goldfish\n');
  let workspace: string;

  beforeAll(async () => {
    await stack.start();
    const container = await stack.azurite.container('models');
    const resnet = container.getBlockBlobClient('ResNet_152.model');
    await resnet.uploadData(model, { blockSize: 1024 * 1024 });
    // Azure stores no Content-MD5 for a blob committed from blocks (Azurite computes one
    // anyway): clear it, as the service would have it.
    await resnet.setHTTPHeaders({});
    await container.getBlockBlobClient('synset.txt').uploadData(labels);
    await container
      .getBlockBlobClient('resnet/v2/weights.bin')
      .uploadData(model.subarray(0, 100_000));
    await container.getBlockBlobClient('resnet/v2/meta/labels.txt').uploadData(labels);
    await container.getBlockBlobClient('resnet/v2/').uploadData(Buffer.alloc(0));
    await container.getBlockBlobClient('resnet/v3/other.bin').uploadData(labels);
  });
  afterAll(() => stack.stop());
  beforeEach(() => (workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'))));
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  const fetch = (
    inputs: Record<string, string>,
    env: Record<string, string> = stack.oidc.jobEnv(),
  ) =>
    runAction(
      'fetch-model',
      {
        'blob-endpoint': stack.azurite.endpoint,
        container: 'models',
        ...stack.identityInputs(),
        ...inputs,
      },
      { env, cwd: workspace },
    );

  const expectFailure = (run: ActionRun, message: RegExp) => {
    expect(run.exitCode).toBe(1);
    expect(errorLines(run).join('\n')).toMatch(message);
  };

  it('downloads the model set and writes verified outputs', async () => {
    const run = await fetch({ blobs: 'ResNet_152.model\nsynset.txt', 'block-size': '1MiB' });
    expect(run.stderr).toBe('');
    expect(run.exitCode).toBe(0);
    const destination = path.join(workspace, 'model');
    expect(run.outputs.path).toBe(destination);
    expect(readFileSync(path.join(destination, 'ResNet_152.model')).equals(model)).toBe(true);
    expect(readFileSync(path.join(destination, 'synset.txt')).equals(labels)).toBe(true);
    expect(listFiles(destination)).toEqual([
      '.fetch-model.lock.json',
      'ResNet_152.model',
      'synset.txt',
    ]);

    const files = JSON.parse(run.outputs.files);
    expect(files).toEqual([
      expect.objectContaining({
        name: 'ResNet_152.model',
        path: path.join(destination, 'ResNet_152.model'),
        size: model.length,
        sha256: sha256(model),
        etag: expect.stringMatching(/^"0x[0-9A-F]+"$/),
        'last-modified': expect.any(String),
        uri: `${stack.azurite.endpoint}/models/ResNet_152.model`,
      }),
      expect.objectContaining({ name: 'synset.txt', size: labels.length, sha256: sha256(labels) }),
    ]);
    const digest = createHash('sha256')
      .update(`ResNet_152.model ${sha256(model)}\nsynset.txt ${sha256(labels)}\n`)
      .digest('hex');
    expect(run.outputs['model-digest']).toBe(digest);
    expect(run.outputs['cache-hit']).toBe('false');
    expect(run.summary).toContain('| `ResNet_152.model` | 3.00 MiB |');
    expect(run.summary).toContain(digest);
  });

  it('gets every token through a fresh OIDC assertion, with the storage audience', async () => {
    const before = stack.entra.tokenRequests.length;
    const run = await fetch({ blobs: 'synset.txt' });
    expect(run.exitCode).toBe(0);
    const requests = stack.entra.tokenRequests.slice(before);
    expect(requests).toEqual([
      { clientId: expect.any(String), scope: 'https://storage.azure.com/.default' },
    ]);
    expect(stack.oidc.issuedAudiences.at(-1)).toBe('api://AzureADTokenExchange');
  });

  const blobs = () => ({
    vouched: { name: 'synset.txt', bytes: labels },
    unvouched: { name: 'ResNet_152.model', bytes: model },
  });

  describeLocalFileScenarios(
    (inputs) => fetch(inputs),
    () => workspace,
    blobs,
  );

  it('fetches a folder by prefix, keeping relative paths and skipping folder markers', async () => {
    const run = await fetch({ prefix: 'resnet/v2', path: 'weights' });
    expect(run.exitCode).toBe(0);
    const destination = path.join(workspace, 'weights');
    expect(listFiles(destination)).toEqual([
      '.fetch-model.lock.json',
      'meta/labels.txt',
      'weights.bin',
    ]);
    const names = JSON.parse(run.outputs.files).map((file: { name: string }) => file.name);
    expect(names).toEqual(['resnet/v2/meta/labels.txt', 'resnet/v2/weights.bin']);
    for (const file of JSON.parse(run.outputs.files)) expect(file.etag).toMatch(/^"0x[0-9A-F]+"$/);
  });

  it('fetches exactly the pinned snapshot after the blob was overwritten', async () => {
    const container = await stack.azurite.container('models');
    const blob = container.getBlockBlobClient('pinned.bin');
    const original = randomBytes(5000);
    await blob.uploadData(original);
    const { snapshot } = await blob.createSnapshot();
    await blob.uploadData(randomBytes(6000));
    const run = await fetch({ blobs: `pinned.bin@snapshot=${snapshot}` });
    expect(run.exitCode).toBe(0);
    expect(readFileSync(path.join(workspace, 'model', 'pinned.bin')).equals(original)).toBe(true);
  });

  it('honours an ETag pin, and refuses one the blob no longer has', async () => {
    const container = await stack.azurite.container('models');
    const { etag } = await container.getBlockBlobClient('synset.txt').getProperties();
    const ok = await fetch({ blobs: `synset.txt@etag=${etag}` });
    expect(ok.exitCode).toBe(0);
    const stale = await fetch({ blobs: 'synset.txt@etag="0x8DC0000000000"' });
    expectFailure(
      stale,
      /'synset.txt'.*no longer has the pinned ETag '0x8DC0000000000'; it now has "0x/,
    );
  });

  it('fails on a sha256 mismatch and leaves nothing behind', async () => {
    const run = await fetch({
      blobs: 'ResNet_152.model, synset.txt',
      sha256: `synset.txt=${'0'.repeat(64)}`,
    });
    expectFailure(
      run,
      /sha256 of 'synset.txt' is [0-9a-f]{64}, but the 'sha256' input expects 0{64}/,
    );
    expect(listFiles(path.join(workspace, 'model'))).toEqual([]);
  });

  it('accepts a matching sha256', async () => {
    const run = await fetch({ blobs: 'synset.txt', sha256: `synset.txt=${sha256(labels)}` });
    expect(run.exitCode).toBe(0);
  });

  it('names the blob and container when a blob does not exist', async () => {
    const run = await fetch({ blobs: 'synset.txt, ResNet_999.model' });
    expectFailure(run, /Blob 'ResNet_999.model' was not found in container 'models'/);
    expect(listFiles(path.join(workspace, 'model'))).toEqual([]);
  });

  it('names the container when it does not exist', async () => {
    const run = await fetch({ container: 'no-such-models', blobs: 'a.bin' });
    expectFailure(run, /Container 'no-such-models' was not found/);
  });

  it('refuses a blob name that would escape the destination, before any request', async () => {
    const run = await fetch({ blobs: '../outside.bin' });
    expectFailure(run, /'\.\.\/outside.bin' contains a '\.\.' segment/);
    expect(existsSync(path.join(workspace, 'outside.bin'))).toBe(false);
  });

  it('says how to fix a job without id-token: write', async () => {
    const run = await fetch({ blobs: 'synset.txt' }, {});
    expectFailure(run, /Add 'permissions: id-token: write'/);
  });

  it('explains a federated credential that does not match this workflow', async () => {
    const run = await fetch({ blobs: 'synset.txt', audience: 'api://SomethingElse' });
    expectFailure(run, /No matching federated identity record.*federated credential whose issuer/);
  });

  it('works with a SAS token instead of OIDC, and never prints it', async () => {
    const sas = stack.azurite.containerSas('models', 'rl');
    const run = await fetch(
      { prefix: 'resnet/v3', 'sas-token': `?${sas}`, 'client-id': '', 'tenant-id': '' },
      {},
    );
    expect(run.exitCode).toBe(0);
    const signature = new URLSearchParams(sas).get('sig')!;
    const unmasked = (run.stdout + run.stderr + run.summary + JSON.stringify(run.outputs))
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n');
    expect(unmasked).not.toContain(signature);
    expect(unmasked).not.toContain(encodeURIComponent(signature));
    expect(run.stdout).toContain(`::add-mask::${signature}`);
  });

  it('names the missing SAS permission on a 403', async () => {
    const sas = stack.azurite.containerSas('models', 'l');
    const run = await fetch({ blobs: 'synset.txt', 'sas-token': sas }, {});
    expectFailure(run, /rejected the 'sas-token'.*grant read \(r\)/);
  });

  it('never prints an OIDC or Entra token outside of add-mask commands', async () => {
    const issuedBefore = stack.oidc.issuedTokens.length;
    const run = await fetch({ blobs: 'ResNet_152.model' });
    expect(run.exitCode).toBe(0);
    const idTokens = stack.oidc.issuedTokens.slice(issuedBefore);
    expect(idTokens.length).toBeGreaterThan(0);
    const masked = run.stdout
      .split('\n')
      .filter((line) => line.startsWith('::add-mask::'))
      .map((line) => line.slice('::add-mask::'.length));
    const accessTokens = masked.filter(
      (token) => decodeJwt(token).aud === 'https://storage.azure.com',
    );
    expect(accessTokens.length).toBeGreaterThan(0);
    const unmasked = [run.stdout, run.stderr, run.summary, JSON.stringify(run.outputs)]
      .join('\n')
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n');
    for (const token of [...idTokens, ...accessTokens]) {
      expect(masked).toContain(token);
      expect(unmasked).not.toContain(token);
      expect(unmasked).not.toContain(token.split('.')[2]);
    }
  });
});
