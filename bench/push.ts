/**
 * Benchmark of action-build-push against the real Distribution registry and dockerd, in one run:
 * - the peer: `docker build` of the equivalent Dockerfile (model copied into the context) then
 *   `docker push`, as the seed pipeline did;
 * - the action bundle in dockerfile mode;
 * - the action bundle in model-layer mode (no daemon; base layers mounted, model uploaded);
 * - a raw `curl` PUT of the same number of bytes to the registry (the practical limit);
 * - the action in model-layer mode again with the same model and a new commit (0 model bytes),
 *   and with the same commit and model (skip-existing).
 * Each variant gets its own random model, so no variant profits from another's build cache or
 * blobs. Prints a Markdown report with ratios and writes it to bench/results/push.md.
 * Run with `npm run bench:push`.
 *
 * Environment: BENCH_SIZE_MIB (1024), BENCH_RUNS (1).
 */
import { execFile, spawnSync } from 'node:child_process';
import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import {
  closeSync,
  cpSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  rmSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { modelDigest, writeLock } from '../src/common/model';
import { BuildStack, REGISTRY_USER } from '../test/support/build-stack';
import { errorLines, REPO_ROOT, runAction } from '../test/support/run-action';

const exec = promisify(execFile);
const MiB = 1024 * 1024;
const FIXTURE = path.join(REPO_ROOT, 'test/fixtures/build-push');
const RESULTS = path.join(__dirname, 'results', 'push.md');

interface Measurement {
  variant: string;
  seconds: number[];
  bytesUploaded?: number;
  note?: string;
}

function positiveInteger(name: string, fallback: number): number {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value < 1)
    throw new Error(`${name} must be a positive integer, not '${raw}'.`);
  return value;
}

const median = (values: number[]) =>
  [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];

/** Writes `size` random bytes to `file`, and returns their sha256. */
function randomFile(file: string, size: number): string {
  const hash = createHash('sha256');
  const buffer = Buffer.alloc(8 * MiB);
  const fd = openSync(file, 'w');
  try {
    for (let written = 0; written < size;) {
      const length = Math.min(buffer.length, size - written);
      randomFillSync(buffer, 0, length);
      writeSync(fd, buffer, 0, length);
      hash.update(buffer.subarray(0, length));
      written += length;
    }
  } finally {
    closeSync(fd);
  }
  return hash.digest('hex');
}

async function timed<T>(fn: () => Promise<T>): Promise<{ seconds: number; value: T }> {
  const started = process.hrtime.bigint();
  const value = await fn();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, value };
}

async function docker(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<string> {
  return (await exec('docker', args, { env, maxBuffer: 256 * MiB })).stdout;
}

async function main(): Promise<void> {
  const sizeBytes = positiveInteger('BENCH_SIZE_MIB', 1024) * MiB;
  const runs = positiveInteger('BENCH_RUNS', 1);
  const stack = await new BuildStack().start();
  const root = mkdtempSync(path.join(os.tmpdir(), 'bench-push-'));
  const dockerConfig = path.join(root, 'docker-config');
  const host = stack.registry.host;
  const measurements: Measurement[] = [];
  let serial = 0;

  /** A workspace with the app, and a model directory of fresh random bytes. */
  const workspace = async () => {
    const dir = path.join(root, `ws-${++serial}`);
    cpSync(path.join(FIXTURE, 'app'), path.join(dir, 'app'), { recursive: true });
    mkdirSync(path.join(dir, 'model'), { recursive: true });
    const sha256 = randomFile(path.join(dir, 'model', 'model.bin'), sizeBytes);
    // fetch-model's state file: build-push ships exactly the files it names, with these sha256s.
    await writeLock(path.join(dir, 'model'), {
      version: 1,
      files: {
        'model.bin': { name: 'model.bin', uri: '', etag: '', size: sizeBytes, sha256, mtimeMs: 0 },
      },
    });
    return { dir, sha256, modelDigest: modelDigest([{ path: 'model.bin', sha256 }]) };
  };
  const action = (
    dir: string,
    inputs: Record<string, string>,
    sha = randomBytes(20).toString('hex'),
  ) =>
    runAction(
      'build-push',
      { registry: host, 'model-path': 'model', ...stack.identityInputs(), ...inputs },
      { env: stack.jobEnv(sha), cwd: dir },
    );
  const checked = (run: Awaited<ReturnType<typeof action>>, what: string) => {
    if (run.exitCode !== 0)
      throw new Error(`${what} failed: ${errorLines(run).join('\n')}\n${run.stdout.slice(-3000)}`);
    return run;
  };

  try {
    // Asynchronously: the token service answering docker runs in this process.
    await exec(
      'sh',
      [
        '-c',
        `printf %s "$PW" | docker --config ${dockerConfig} login ${host} -u ${REGISTRY_USER.username} --password-stdin`,
      ],
      {
        env: { ...process.env, PW: REGISTRY_USER.password },
      },
    );
    // The base of model-layer mode: the app without the model, in the same registry.
    const base = `${host}/ai/app-base:1`;
    await docker([
      'build',
      '-q',
      '-t',
      base,
      '-f',
      path.join(FIXTURE, 'app/Dockerfile.base'),
      path.join(FIXTURE, 'app'),
    ]);
    await docker(['--config', dockerConfig, 'push', base]);
    const env = { ...process.env, DOCKER_CONFIG: dockerConfig };

    const peer: Measurement = { variant: 'docker build + docker push (peer)', seconds: [] };
    const dockerfileMode: Measurement = {
      variant: 'action, dockerfile mode (docker build + push)',
      seconds: [],
    };
    const layerMode: Measurement = { variant: 'action, model-layer mode (no daemon)', seconds: [] };
    const curl: Measurement = { variant: 'raw curl PUT of the same bytes (limit)', seconds: [] };
    const rerun: Measurement = {
      variant: 'action, model-layer mode, same model, new commit',
      seconds: [],
    };
    const skip: Measurement = {
      variant: 'action, same commit and model (skip-existing)',
      seconds: [],
    };

    for (let run = 0; run < runs; run++) {
      process.stderr.write(`run ${run + 1} of ${runs}\n`);
      {
        const ws = await workspace();
        cpSync(path.join(ws.dir, 'model'), path.join(ws.dir, 'app', 'model'), { recursive: true });
        const image = `${host}/bench/peer-${run}:1`;
        const { seconds } = await timed(async () => {
          await docker(['build', '-q', '-t', image, path.join(ws.dir, 'app')], env);
          await docker(['push', image], env);
        });
        peer.seconds.push(seconds);
        await docker(['image', 'rm', image]).catch(() => undefined);
        rmSync(ws.dir, { recursive: true, force: true });
      }
      {
        const ws = await workspace();
        const { seconds, value } = await timed(() =>
          action(ws.dir, { repository: `bench/dockerfile-${run}`, context: 'app' }),
        );
        checked(value, 'dockerfile mode');
        dockerfileMode.seconds.push(seconds);
        dockerfileMode.bytesUploaded = Number(value.outputs['bytes-uploaded']);
        await docker([
          'image',
          'rm',
          `${host}/bench/dockerfile-${run}:${JSON.parse(value.outputs.tags)[0]}`,
        ]).catch(() => undefined);
        rmSync(ws.dir, { recursive: true, force: true });
      }
      {
        const ws = await workspace();
        const repository = `bench/layer-${run}`;
        const sha = randomBytes(20).toString('hex');
        const inputs = {
          repository,
          mode: 'model-layer',
          'base-image': 'ai/app-base:1',
          'model-digest': ws.modelDigest,
        };
        const first = await timed(() => action(ws.dir, inputs, sha));
        checked(first.value, 'model-layer mode');
        layerMode.seconds.push(first.seconds);
        layerMode.bytesUploaded = Number(first.value.outputs['bytes-uploaded']);
        const again = await timed(() => action(ws.dir, inputs));
        checked(again.value, 'model-layer re-run');
        rerun.seconds.push(again.seconds);
        rerun.bytesUploaded = Number(again.value.outputs['bytes-uploaded']);
        if (!/model layer \| `[0-9a-f]+` \| [^|]+ \| reused/.test(again.value.summary)) {
          throw new Error(`the re-run uploaded the model layer again:\n${again.value.summary}`);
        }
        const skipped = await timed(() => action(ws.dir, inputs, sha));
        checked(skipped.value, 'skip-existing run');
        if (skipped.value.outputs.skipped !== 'true')
          throw new Error('the skip-existing run did not skip');
        skip.seconds.push(skipped.seconds);
        skip.bytesUploaded = Number(skipped.value.outputs['bytes-uploaded']);
        rmSync(ws.dir, { recursive: true, force: true });
      }
      {
        const ws = await workspace();
        const repository = `bench/curl-${run}`;
        const token = stack.registry.bearer(repository);
        const file = path.join(ws.dir, 'model', 'model.bin');
        const { seconds } = await timed(async () => {
          const start = await fetch(`${stack.registry.url}/v2/${repository}/blobs/uploads/`, {
            method: 'POST',
            headers: { authorization: `Bearer ${token}` },
          });
          const location = new URL(start.headers.get('location')!, stack.registry.url);
          location.searchParams.set('digest', `sha256:${ws.sha256}`);
          const out = await exec('curl', [
            '-sS',
            '--fail',
            '--cacert',
            process.env.NODE_EXTRA_CA_CERTS ?? '',
            '-X',
            'PUT',
            '-H',
            `Authorization: Bearer ${token}`,
            '-H',
            'Content-Type: application/octet-stream',
            // No 100-continue round trip: the bytes go at once.
            '-H',
            'Expect:',
            '-T',
            file,
            '-o',
            '/dev/null',
            '-w',
            '%{http_code}',
            location.toString(),
          ]);
          if (out.stdout !== '201') throw new Error(`curl PUT answered ${out.stdout}`);
        });
        curl.seconds.push(seconds);
        curl.bytesUploaded = sizeBytes;
        rmSync(ws.dir, { recursive: true, force: true });
      }
    }
    measurements.push(peer, dockerfileMode, layerMode, curl, rerun, skip);

    const peerTime = median(peer.seconds);
    const curlTime = median(curl.seconds);
    const layerTime = median(layerMode.seconds);
    const versions = [
      `Node ${process.version}`,
      `docker ${(await docker(['version', '--format', '{{.Server.Version}}'])).trim()}`,
      spawnSync('docker-registry', ['--version']).stdout.toString().trim(),
      spawnSync('curl', ['--version'])
        .stdout.toString()
        .split('\n')[0]
        .split(' ')
        .slice(0, 2)
        .join(' '),
    ];
    const rows = measurements.map((m) => {
      const time = median(m.seconds);
      return `| ${m.variant} | ${m.seconds.map((s) => s.toFixed(2)).join(', ')} | ${time.toFixed(2)} | ${(time / peerTime).toFixed(2)} | ${(time / curlTime).toFixed(2)} | ${m.bytesUploaded === undefined ? '–' : (m.bytesUploaded / MiB).toFixed(1)} |`;
    });
    const speedup = peerTime / layerTime;
    const ofCurl = layerTime / curlTime;
    const rerunTime = median(rerun.seconds);
    const report = [
      '# action-build-push benchmark',
      '',
      `- Date: ${new Date().toISOString()}`,
      `- Machine: nproc ${os.cpus().length}, ${os.cpus()[0]?.model ?? ''}, ${(os.totalmem() / 2 ** 30).toFixed(1)} GiB RAM, Linux ${os.release()}`,
      `- ${versions.join('; ')}`,
      `- Model: ${(sizeBytes / MiB).toFixed(0)} MiB of random bytes (one file), fresh for every variant; base image \`ai-app-base:bookworm\` + the test app`,
      '- Registry: Distribution on 127.0.0.1 over HTTPS with token auth (the ACR token double); the action signs in by OIDC through the GitHub, Entra and ACR doubles',
      `- Runs: ${runs}; the median is reported. Times are wall times of the whole step (the bundle as the runner runs it), or of build + push for the peer`,
      '',
      '| Variant | Runs (s) | Time (s, median) | ÷ peer | ÷ curl PUT | Uploaded (MiB) |',
      '|---|---|--:|--:|--:|--:|',
      ...rows,
      '',
      `Model-layer mode is **${speedup.toFixed(1)}×** faster than docker build + docker push (target ≥ 6×) and takes **${ofCurl.toFixed(2)}×** the raw curl PUT (target ≤ 1.3×). ` +
        `A second run with the same model uploads ${((rerun.bytesUploaded ?? 0) / 1024).toFixed(1)} KiB (config and manifests, 0 model bytes) in ${rerunTime.toFixed(2)} s (target < 2 s).`,
      '',
    ].join('\n');
    process.stdout.write(`${report}\n`);
    mkdirSync(path.dirname(RESULTS), { recursive: true });
    writeFileSync(RESULTS, report);
  } finally {
    const images = (await docker(['image', 'ls', '--format', '{{.Repository}}:{{.Tag}}']))
      .split('\n')
      .filter((image) => image.startsWith(`${host}/`));
    if (images.length > 0) await docker(['image', 'rm', '-f', ...images]).catch(() => undefined);
    rmSync(root, { recursive: true, force: true });
    await stack.stop();
  }
}

main().catch((error) => {
  process.stderr.write(
    `${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`,
  );
  process.exit(1);
});
