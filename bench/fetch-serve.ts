/**
 * Keeps the fetch benchmark's stack up for profiling by hand: Azurite (disk persistence) with a
 * blob of BENCH_SIZE_MIB random bytes, the OIDC and Entra doubles; writes the environment a
 * runner would give the action to $SERVE_ENV_FILE, then waits for Ctrl-C.
 */
import { createHash, randomFillSync } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { Readable } from 'node:stream';
import { Stack } from '../test/support/stack';

const MiB = 1024 * 1024;

async function main() {
  const size = Number(process.env.BENCH_SIZE_MIB ?? 1024) * MiB;
  const stack = new Stack();
  await stack.start({ inMemory: false });
  const container = await stack.azurite.container('bench');
  const blob = container.getBlockBlobClient('model.bin');
  const sha = createHash('sha256');
  const md5 = createHash('md5');
  function* chunks() {
    for (let at = 0; at < size; at += 8 * MiB) {
      const chunk = randomFillSync(Buffer.allocUnsafe(Math.min(8 * MiB, size - at)));
      sha.update(chunk);
      md5.update(chunk);
      yield chunk;
    }
  }
  await blob.uploadStream(Readable.from(chunks(), { objectMode: false }), 8 * MiB, 4);
  const md5Digest = md5.digest();
  const env = {
    ...stack.oidc.jobEnv(),
    INPUT_BLOB_ENDPOINT: stack.azurite.endpoint,
    INPUT_CONTAINER: 'bench',
    INPUT_BLOBS: 'model.bin',
    'INPUT_CLIENT-ID': stack.identityInputs()['client-id'],
    'INPUT_TENANT-ID': stack.identityInputs()['tenant-id'],
    'INPUT_AUTHORITY-HOST': stack.identityInputs()['authority-host'],
    SHA256: sha.digest('hex'),
    MD5: md5Digest.toString('base64'),
    SAS_URL: `${blob.url}?${stack.azurite.containerSas('bench', 'rl')}`,
    PORT: String(stack.azurite.port),
  };
  const write = () => {
    // A SAS lasts an hour: renew it while the stack is up.
    env.SAS_URL = `${blob.url}?${stack.azurite.containerSas('bench', 'rl')}`;
    writeFileSync(process.env.SERVE_ENV_FILE ?? '/tmp/fetch-serve.json', JSON.stringify(env));
  };
  write();
  setInterval(write, 10 * 60_000);
  console.error('[serve] ready');
  process.once('SIGINT', () => void stack.stop().then(() => process.exit(0)));
  process.once('SIGTERM', () => void stack.stop().then(() => process.exit(0)));
}
void main();
