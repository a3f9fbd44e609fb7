/**
 * `npm run demo`: the whole pipeline rehearsed locally, wired exactly as
 * .github/workflows/image-classifier.yml and ai-app-cicd.yml wire it in GitHub Actions.
 *
 * One embedded stack (test/support/pipeline-stack.ts): ONE GitHub OIDC issuer double and ONE
 * Entra double, trusted by a real Azurite (the model storage), a real Distribution registry
 * behind the ACR token double, ARM and the Kubernetes API double; a GitHub API double; the
 * local dockerd. It trains the example model (or reuses it from .local/model-cache), uploads it
 * as a data scientist would, sends the BlobCreated event through the model-upload dispatcher
 * over HTTP, reads the repository_dispatch GitHub received, then runs the committed action
 * bundles in order as the runner would (INPUT_* variables, GITHUB_OUTPUT, the job summary, the
 * OIDC token endpoint, the post step): fetch-model → build-push → deploy-aks. It pulls and runs
 * the pushed image and prints a real prediction. The cluster already runs yesterday's model
 * (its pods are real containers), so deploy-aks deploys with strategy canary: the new model's
 * canary and a baseline run beside it, the analysis sends sample/analysis.jsonl to both through
 * the API server's pod proxy, and a pass promotes. A request to the Service's load balancer
 * then shows the prediction the cluster's pods serve. A second run with nothing changed shows
 * the skip path. Files it leaves for inspection go to .local/demo/.
 */
import { execFile, execFileSync } from 'node:child_process';
import { createHash, randomBytes } from 'node:crypto';
import { cpSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { BlobServiceClient } from '@azure/storage-blob';
import { Dispatcher } from '../examples/model-upload-dispatcher/src/dispatcher';
import { LocalDispatcherServer } from '../examples/model-upload-dispatcher/src/local-server';
import { readSettings, SETTING } from '../examples/model-upload-dispatcher/src/settings';
import { formatBytes, formatDuration } from '../src/common/format';
import { REGISTRY_USER } from '../test/support/build-stack';
import { CLUSTER_NAME, RESOURCE_GROUP, SUBSCRIPTION_ID } from '../test/support/deploy-stack';
import {
  ACCOUNT_ID,
  blobCreated,
  EventGridEntra,
  validationEvent,
} from '../test/support/event-grid';
import { LABELS_FILE, MODEL_FILE, modelFilesOf, trainedModel } from '../test/support/models';
import { PIPELINE_REPOSITORY, PipelineStack } from '../test/support/pipeline-stack';
import { freePort } from '../test/support/ports';
import { errorLines, REPO_ROOT, runAction, type ActionRun } from '../test/support/run-action';

const exec = promisify(execFile);
const DEMO_DIR = path.join(REPO_ROOT, '.local', 'demo');
/** The example app, as the caller workflow names it (paths relative to the repository root). */
const APP_CONTEXT = 'examples/image-classifier';
const APP_DIR = path.join(REPO_ROOT, APP_CONTEXT);
/** What image-classifier.yml passes to the reusable workflow. */
const MODEL_CONTAINER = 'models';
const REPOSITORY = 'ai/image-classifier';
const NAMESPACE = 'image-classifier';
const SMOKE_REQUEST = `${APP_CONTEXT}/sample/request.json`;
const SMOKE_EXPECT = readFileSync(path.join(APP_DIR, 'sample/expected.txt'), 'utf8').trim();
const MANIFESTS = `${APP_CONTEXT}/k8s`;
/** The model-quality gate's samples: 200 held-out digits with their labels. */
const ANALYSIS_REQUESTS = `${APP_CONTEXT}/sample/analysis.jsonl`;

interface Stage {
  name: string;
  milliseconds: number;
  result: string;
}

const stages: Stage[] = [];

/** Runs one stage: a heading, the work, its time; the work's return value is its summary. */
async function stage(name: string, work: () => Promise<string>): Promise<void> {
  console.log(`\n=== ${name}`);
  const started = Date.now();
  let result: string;
  try {
    result = await work();
  } catch (error) {
    stages.push({ name, milliseconds: Date.now() - started, result: 'FAILED' });
    throw error;
  }
  const milliseconds = Date.now() - started;
  stages.push({ name, milliseconds, result });
  console.log(`--- ${formatDuration(milliseconds)}: ${result}`);
}

function check(condition: unknown, message: string): asserts condition {
  if (!condition) throw new Error(message);
}

/** The action's log without the ::add-mask:: lines, which carry the very values to hide. */
function visibleLog(run: ActionRun): string {
  return `${run.stdout}\n${run.stderr}`
    .split('\n')
    .filter((line) => !line.startsWith('::add-mask::'))
    .join('\n')
    .trim();
}

/** Fails the stage with the action's log when it failed; otherwise prints outputs and summary. */
function printRun(run: ActionRun, options: { summary?: boolean } = {}): void {
  if (run.exitCode !== 0) {
    console.error(visibleLog(run));
    throw new Error(`the action failed (exit ${run.exitCode}): ${errorLines(run).join(' ')}`);
  }
  for (const line of run.stdout.split('\n').filter((l) => l.startsWith('::warning'))) {
    console.log(`WARNING from the action: ${line.replace(/^::warning[^:]*::/, '')}`);
  }
  console.log(`Outputs (GITHUB_OUTPUT), after ${formatDuration(run.milliseconds)}:`);
  for (const [name, value] of Object.entries(run.outputs)) {
    let shown = value;
    if (name === 'analysis' && value) {
      console.log(`  ${name} = (${value.length} characters of JSON; the job summary shows it)`);
      continue;
    }
    if (value.startsWith('[') || value.startsWith('{')) {
      try {
        shown = JSON.stringify(JSON.parse(value), null, 2);
      } catch {
        // not JSON after all: shown as written
      }
    }
    console.log(`  ${name} = ${shown.replace(/\n/g, '\n    ')}`);
  }
  if (options.summary !== false && run.summary.trim()) {
    console.log('\nJob summary (GITHUB_STEP_SUMMARY):\n');
    console.log(run.summary.trim().replace(/^/gm, '  '));
  }
}

/** The `::save-state name=X::value` commands a main step printed: the post step's STATE_X. */
function savedState(run: ActionRun): Record<string, string> {
  const state: Record<string, string> = {};
  for (const match of run.stdout.matchAll(/^::save-state name=([^:]+)::(.*)$/gm)) {
    state[`STATE_${match[1]}`] = match[2];
  }
  return state;
}

const sha256File = (file: string) => createHash('sha256').update(readFileSync(file)).digest('hex');

async function docker(args: string[], env?: NodeJS.ProcessEnv): Promise<string> {
  const { stdout } = await exec('docker', args, { maxBuffer: 64 * 1024 * 1024, env });
  return stdout.trim();
}

async function waitForHealth(url: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      if ((await fetch(url)).ok) return;
    } catch {
      // not listening yet
    }
    if (Date.now() > deadline) throw new Error(`${url} did not answer within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 250));
  }
}

/** The commit the pipeline builds: this checkout's HEAD (a fresh clone has one). */
function headCommit(): string {
  try {
    return execFileSync('git', ['rev-parse', 'HEAD'], { cwd: REPO_ROOT, encoding: 'utf8' }).trim();
  } catch {
    return createHash('sha1').update('not a git checkout').digest('hex');
  }
}

async function main(): Promise<void> {
  rmSync(DEMO_DIR, { recursive: true, force: true });
  // The job's checkout (the actions write into the app context) and its runner temp directory.
  const workspace = path.join(DEMO_DIR, 'workspace');
  const runnerTemp = path.join(DEMO_DIR, 'runner-temp');
  const modelPath = path.join(runnerTemp, 'model');
  mkdirSync(runnerTemp, { recursive: true });
  cpSync(APP_DIR, path.join(workspace, APP_CONTEXT), {
    recursive: true,
    filter: (source) => !/(__pycache__|\.pytest_cache)/.test(source),
  });
  const sha = headCommit();

  const stack = new PipelineStack();
  const dispatcherLog: string[] = [];
  const dispatcherSink = {
    info: (m: string) => dispatcherLog.push(m),
    warn: (m: string) => dispatcherLog.push(`warning: ${m}`),
    debug: () => undefined,
  };
  let dispatcherServer: LocalDispatcherServer | undefined;
  // Event Grid's Entra sign-in for the webhook (an Entra double, as the stack's is).
  const eventGrid = new EventGridEntra();
  const containers: string[] = [];
  try {
    await stage('Start the embedded stack', async () => {
      await stack.start();
      console.log(
        `GitHub OIDC issuer (double): ${stack.oidc.jobEnv().ACTIONS_ID_TOKEN_REQUEST_URL.split('?')[0]}`,
      );
      console.log(
        `Entra (double, one app with a federated credential): ${stack.entra.authorityHost}`,
      );
      console.log(`Azurite blob endpoint (real, OAuth):   ${stack.storage.azurite.endpoint}`);
      console.log(`Container registry (real Distribution): ${stack.build.registry.url}`);
      console.log(`  its ACR token service (double):       ${stack.build.registry.tokens.realm}`);
      console.log(`ARM (double):                            ${stack.deploy.arm.endpoint}`);
      console.log(`Kubernetes API (double, simulated pods): ${stack.deploy.kube.url}`);
      console.log(`GitHub REST API (double):                ${stack.github.url}`);
      console.log(`dockerd: ${await docker(['version', '--format', '{{.Server.Version}}'])}`);
      return 'one OIDC issuer and one Entra app for storage, registry, ARM and Kubernetes';
    });

    let modelDir = '';
    await stage('Train the example model (or reuse it)', async () => {
      const { dir, reused } = await trainedModel({}, (line) => console.log(line));
      modelDir = dir;
      for (const name of [MODEL_FILE, LABELS_FILE]) {
        const file = path.join(dir, name);
        console.log(
          `${name}: ${formatBytes(readFileSync(file).length)}, sha256 ${sha256File(file)}`,
        );
      }
      return reused
        ? `reused ${path.relative(REPO_ROOT, dir)}`
        : 'trained with Debian scikit-learn';
    });

    let uploadedEtag = '';
    let uploadedSize = 0;
    await stage('A data scientist uploads the model to the models container', async () => {
      const azurite = stack.storage.azurite;
      // No kept-alive sockets: Azurite's graceful stop would wait minutes for them to idle out.
      const container = new BlobServiceClient(azurite.endpoint, azurite.sharedKey, {
        keepAliveOptions: { enable: false },
      }).getContainerClient(MODEL_CONTAINER);
      await container.createIfNotExists();
      // labels.txt first: the model file's upload is the event that triggers the pipeline.
      for (const name of [LABELS_FILE, MODEL_FILE]) {
        const bytes = readFileSync(path.join(modelDir, name));
        const response = await container.getBlockBlobClient(name).uploadData(bytes);
        console.log(
          `${MODEL_CONTAINER}/${name}: ${formatBytes(bytes.length)}, ETag ${response.etag}`,
        );
        if (name === MODEL_FILE) {
          uploadedEtag = response.etag ?? '';
          uploadedSize = bytes.length;
        }
      }
      return `${MODEL_FILE} and ${LABELS_FILE} in ${MODEL_CONTAINER}`;
    });

    let modelBlobs = '';
    await stage('Event Grid → model-upload dispatcher → GitHub repository_dispatch', async () => {
      const app = stack.github.addApp([PIPELINE_REPOSITORY]);
      await eventGrid.start();
      const settings = readSettings({
        [SETTING.repository]: PIPELINE_REPOSITORY,
        [SETTING.apiUrl]: stack.github.url,
        [SETTING.storageAccountId]: ACCOUNT_ID,
        [SETTING.container]: MODEL_CONTAINER,
        [SETTING.appId]: app.appId,
        [SETTING.installationId]: app.installationId,
        [SETTING.privateKey]: app.privateKeyPem,
        ...eventGrid.settings(),
      });
      dispatcherServer = new LocalDispatcherServer(new Dispatcher(settings), dispatcherSink);
      const url = await dispatcherServer.start();
      console.log(`Dispatcher (the Azure Function's code on node:http): ${url}`);
      const deliver = async (eventType: string, events: unknown[]) => {
        const response = await fetch(url, {
          method: 'POST',
          headers: await eventGrid.headers({
            'content-type': 'application/json',
            'aeg-event-type': eventType,
          }),
          body: JSON.stringify(events),
        });
        const body = await response.text();
        check(response.ok, `the dispatcher answered ${response.status}: ${body}`);
        return body;
      };
      const code = randomBytes(8).toString('hex');
      const handshake = await deliver('SubscriptionValidation', [
        validationEvent(ACCOUNT_ID, code),
      ]);
      check(
        JSON.parse(handshake).validationResponse === code,
        `the dispatcher did not echo the validation code: ${handshake}`,
      );
      console.log(`Subscription validation handshake: answered ${handshake}`);
      // Event Grid carries the ETag bare (0x8D...), as Storage's BlobCreated schema has it.
      const event = blobCreated({
        blob: MODEL_FILE,
        container: MODEL_CONTAINER,
        etag: uploadedEtag.replace(/^"(.*)"$/, '$1'),
        size: uploadedSize,
      });
      console.log(
        `BlobCreated for ${MODEL_CONTAINER}/${MODEL_FILE}: answered ${await deliver('Notification', [event])}`,
      );
      console.log('Dispatcher log:\n' + dispatcherLog.map((line) => `  ${line}`).join('\n'));
      check(
        stack.github.dispatches.length === 1,
        `GitHub received ${stack.github.dispatches.length} dispatches, not 1`,
      );
      const dispatch = stack.github.dispatches[0];
      console.log(
        `GitHub received POST /repos/${dispatch.repository}/dispatches: event_type ${dispatch.eventType}, ` +
          `client_payload ${JSON.stringify(dispatch.clientPayload, null, 2).replace(/\n/g, '\n  ')}`,
      );
      check(dispatch.eventType === 'model-uploaded', `unexpected event_type ${dispatch.eventType}`);
      const { blob, etag } = dispatch.clientPayload as { blob?: string; etag?: string };
      check(blob === MODEL_FILE && etag, `the payload does not name ${MODEL_FILE} and its ETag`);
      // What image-classifier.yml's settings job makes of a model-uploaded dispatch.
      modelBlobs = `${MODEL_FILE}@etag=${etag}\n${LABELS_FILE}`;
      console.log(`The caller workflow's model-blobs:\n  ${modelBlobs.replace(/\n/g, '\n  ')}`);
      return `repository_dispatch model-uploaded, ${MODEL_FILE} pinned to ETag ${etag}`;
    });

    /** build-push's inputs as ai-app-cicd.yml's build job passes them (dockerfile mode). */
    const buildInputs = (modelPath: string) => ({
      ...stack.identityInputs(),
      cloud: 'AzurePublicCloud',
      registry: stack.build.registry.host,
      repository: REPOSITORY,
      mode: 'dockerfile',
      context: APP_CONTEXT,
      'model-path': modelPath,
    });
    /** deploy-aks's inputs as ai-app-cicd.yml's deploy job passes them. */
    const deployInputs = (images: string, modelDigest: string, extra: Record<string, string>) => ({
      ...stack.identityInputs(),
      cloud: 'AzurePublicCloud',
      'subscription-id': SUBSCRIPTION_ID,
      'resource-group': RESOURCE_GROUP,
      'cluster-name': CLUSTER_NAME,
      namespace: NAMESPACE,
      manifests: MANIFESTS,
      images,
      'model-digest': modelDigest,
      // Where the doubles stand in for management.azure.com (the cloud's ARM endpoint).
      'arm-endpoint': stack.deploy.arm.endpoint,
      ...extra,
    });
    const podsLine = () =>
      stack.deploy.kube
        .list('Pod', NAMESPACE)
        .map(
          (pod) =>
            `${pod.metadata.name} (${pod.status?.containerStatuses?.[0]?.ready ? 'ready' : (pod.status?.phase ?? 'Pending')})`,
        )
        .join(', ');
    let serviceEndpoint = '';
    /** POSTs the smoke test's sample to `base`/score, prints the answer, checks the prediction. */
    const scoreSample = async (base: string): Promise<string> => {
      const response = await fetch(`${base}/score`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: readFileSync(path.join(workspace, SMOKE_REQUEST)),
      });
      const text = await response.text();
      check(response.ok, `POST /score answered ${response.status}: ${text}`);
      console.log(
        `POST ${base}/score (${SMOKE_REQUEST}, a handwritten 7) → ${JSON.stringify(JSON.parse(text), null, 2)}`,
      );
      check(
        text.replace(/\s/g, '').includes(SMOKE_EXPECT.replace(/\s/g, '')),
        `the prediction does not contain ${SMOKE_EXPECT}`,
      );
      const best = (JSON.parse(text) as { results?: Array<{ label: string; probability: number }> })
        .results?.[0];
      return best
        ? `"${best.label}" (p=${best.probability.toFixed(3)})`
        : `answer ${text.slice(0, 60)}`;
    };

    let runNumber = 0;
    const pipeline = async (pass: 1 | 2) => {
      const env = { ...stack.jobEnv(sha, String(1000 + ++runNumber)), RUNNER_TEMP: runnerTemp };
      const title = pass === 1 ? '' : ' again';

      let model: Record<string, string> = {};
      await stage(`fetch-model${title}`, async () => {
        const run = await runAction(
          'fetch-model',
          {
            ...stack.identityInputs(),
            cloud: 'AzurePublicCloud',
            'storage-account': '',
            'blob-endpoint': stack.storage.azurite.endpoint,
            container: MODEL_CONTAINER,
            blobs: modelBlobs,
            prefix: '',
            sha256: '',
            path: modelPath,
          },
          { env, cwd: workspace },
        );
        printRun(run, { summary: pass === 1 });
        model = run.outputs;
        if (pass === 2)
          check(model['cache-hit'] === 'true', 'nothing changed, yet fetch-model downloaded again');
        return `cache-hit ${model['cache-hit']}, model-digest ${model['model-digest'].slice(0, 12)}`;
      });

      let image: Record<string, string> = {};
      await stage(`build-push${title} (dockerfile mode, smoke test, push over OIDC)`, async () => {
        const run = await runAction(
          'build-push',
          {
            ...buildInputs(model.path),
            dockerfile: '',
            'build-args': '',
            'base-image': '',
            'model-digest': model['model-digest'],
            'model-files': model.files,
            'smoke-port': '5000',
            'smoke-path': '/health',
            'smoke-request': SMOKE_REQUEST,
            'smoke-request-path': '/score',
            'smoke-expect': SMOKE_EXPECT,
          },
          { env, cwd: workspace },
        );
        // The runner's post step (post-if: always()) with the state the main step saved.
        const state = savedState(run);
        check(state['STATE_is-post'] === 'true', 'build-push saved no state for its post step');
        const post = await runAction(
          'build-push',
          {},
          { env: { ...env, ...state }, cwd: workspace },
        );
        printRun(run, { summary: pass === 1 });
        check(post.exitCode === 0, `the post step failed: ${visibleLog(post)}`);
        const cleaned = visibleLog(post)
          .split('\n')
          .filter((line) => line && !line.startsWith('::'));
        console.log(`Post step: ${cleaned.join(' ') || 'nothing left to clean up'}`);
        image = run.outputs;
        // Dockerfile mode never skips: an image docker built cannot be recomputed to prove that
        // the existing tag holds it, and its labels are writable by any AcrPush holder. (Model-
        // layer mode, whose image is recomputed here, skips an unchanged commit and model.)
        check(image.skipped === 'false', 'dockerfile mode skipped a build it cannot verify');
        return `pushed ${image.image.split('@')[1].slice(0, 19)}, ${formatBytes(Number(image['bytes-uploaded']))} uploaded`;
      });

      if (pass === 1) {
        await stage('Pull and run the pushed image; POST the sample to /score', async () => {
          const config = path.join(runnerTemp, 'docker-config-pull');
          mkdirSync(config, { recursive: true });
          const dockerEnv = { ...process.env, DOCKER_CONFIG: config, PW: REGISTRY_USER.password };
          try {
            // A person with pull rights, signing in with a password read from stdin.
            await exec(
              'sh',
              [
                '-c',
                `printf %s "$PW" | docker login ${stack.build.registry.host} -u ${REGISTRY_USER.username} --password-stdin`,
              ],
              { env: dockerEnv },
            );
            console.log(`docker pull ${image.image}`);
            await docker(['pull', '-q', image.image], dockerEnv);
          } finally {
            rmSync(config, { recursive: true, force: true });
          }
          const port = await freePort();
          const name = `ai-app-demo-${randomBytes(4).toString('hex')}`;
          containers.push(name);
          await docker(['run', '-d', '--name', name, '-p', `127.0.0.1:${port}:5000`, image.image]);
          const base = `http://127.0.0.1:${port}`;
          await waitForHealth(`${base}/health`, 60_000).catch(async (error) => {
            console.error(await docker(['logs', name]).catch(() => ''));
            throw error;
          });
          console.log(`docker run ${name}: listening on ${base}`);
          console.log(`GET /version → ${await (await fetch(`${base}/version`)).text()}`.trim());
          return `predicted ${await scoreSample(base)}`;
        });
      }

      await stage(`deploy-aks${title}`, async () => {
        // ai-app-cicd.yml's deploy job runs only when the build was not skipped (or redeploy).
        if (image.skipped === 'true') {
          const reason =
            `build-push skipped=true: the image for commit ${sha.slice(0, 12)} and model ` +
            `${model['model-digest'].slice(0, 12)} already exists, so the deploy job does not run ` +
            `(ai-app-cicd.yml: needs.build.outputs.skipped != 'true' || inputs.redeploy)`;
          console.log(reason);
          return 'skipped: nothing new to deploy';
        }
        // A canary beside yesterday's version, the model-quality gate, promotion on a pass.
        const run = await runAction(
          'deploy-aks',
          deployInputs(image.image, model['model-digest'], {
            strategy: 'canary',
            'analysis-requests': ANALYSIS_REQUESTS,
            'analysis-field': 'results[0].label',
            'auto-promote': 'true',
          }),
          { env, cwd: workspace },
        );
        printRun(run, { summary: pass === 1 });
        check(run.outputs.verdict === 'pass', `the analysis verdict is ${run.outputs.verdict}`);
        check(run.outputs['rolled-back'] === 'false', 'the rollout was rolled back');
        const deployment = stack.deploy.kube.get('Deployment', NAMESPACE, 'image-classifier');
        const running = deployment?.spec.template.spec.containers[0].image;
        console.log(`The cluster's Deployment now runs ${running}`);
        console.log(`Pods: ${podsLine()}`);
        check(running === image.image, 'the Deployment does not run the pushed image');
        check(
          !stack.deploy.kube.get('Deployment', NAMESPACE, 'image-classifier-canary'),
          'the canary is still there after the promotion',
        );
        const analysis = JSON.parse(run.outputs.analysis) as {
          agreement: number;
          candidate: { accuracy: number };
          stable: { accuracy: number };
        };
        [serviceEndpoint] = JSON.parse(run.outputs['service-endpoints'] || '[]') as string[];
        return (
          `canary: verdict pass (agreement ${(analysis.agreement * 100).toFixed(1)} %, accuracy ` +
          `${(analysis.candidate.accuracy * 100).toFixed(1)} % vs ${(analysis.stable.accuracy * 100).toFixed(1)} %), ` +
          `promoted to revision ${run.outputs.revision}`
        );
      });

      if (pass === 1) {
        await stage(
          "POST the sample to the Service's endpoint (the cluster's pods answer)",
          async () => {
            check(serviceEndpoint, 'the LoadBalancer Service got no address');
            const url = `http://${serviceEndpoint}`;
            console.log(`Service image-classifier (LoadBalancer): ${url} → ${podsLine()}`);
            const version = (await (await fetch(`${url}/version`)).json()) as {
              model: { sha256: string };
            };
            const served = version.model.sha256;
            const uploaded = sha256File(path.join(modelDir, MODEL_FILE));
            console.log(`GET ${url}/version → model sha256 ${served}`);
            check(
              served === uploaded,
              `the pods serve model ${served}, not the uploaded ${uploaded}`,
            );
            return `predicted ${await scoreSample(url)} by today's model, served by the cluster`;
          },
        );
      }
    };

    // The example's Deployment names the registry it is deployed from (myacr.azurecr.io);
    // deploy-aks replaces images of the same registry and repository only, so the demo's
    // checkout names the local registry, as a user names theirs.
    const deploymentFile = path.join(workspace, MANIFESTS, 'deployment.yaml');
    const exampleRegistry = 'myacr.azurecr.io/';
    const deploymentText = readFileSync(deploymentFile, 'utf8');
    if (!deploymentText.includes(`image: ${exampleRegistry}${REPOSITORY}:`)) {
      throw new Error(
        `${MANIFESTS}/deployment.yaml no longer names ${exampleRegistry}${REPOSITORY}`,
      );
    }
    writeFileSync(
      deploymentFile,
      deploymentText.replace(`image: ${exampleRegistry}`, `image: ${stack.build.registry.host}/`),
    );

    // The namespace exists already: a cluster administrator creates it once, with the
    // namespace-scoped role the pipeline's app registration holds.
    stack.deploy.kube.seed({ apiVersion: 'v1', kind: 'Namespace', metadata: { name: NAMESPACE } });

    console.log("\n##### Before: production runs yesterday's model");
    await stage("Yesterday's release: build-push and deploy-aks (strategy basic)", async () => {
      const yesterday = await trainedModel({ seed: 1 }, (line) => console.log(line));
      console.log(`Yesterday's training run (another seed): ${yesterday.dir}`);
      const env = {
        ...stack.jobEnv(createHash('sha1').update(`yesterday ${sha}`).digest('hex'), '999'),
        RUNNER_TEMP: runnerTemp,
      };
      const built = await runAction(
        'build-push',
        { ...buildInputs(yesterday.dir), 'model-files': modelFilesOf(yesterday.dir) },
        {
          env,
          cwd: workspace,
        },
      );
      check(built.exitCode === 0, `build-push failed: ${errorLines(built).join(' ')}`);
      await runAction('build-push', {}, { env: { ...env, ...savedState(built) }, cwd: workspace });
      const deployed = await runAction(
        'deploy-aks',
        deployInputs(built.outputs.image, built.outputs['model-digest'], {}),
        { env, cwd: workspace },
      );
      check(deployed.exitCode === 0, `deploy-aks failed: ${errorLines(deployed).join(' ')}`);
      console.log(`Deployment/image-classifier runs ${built.outputs.image}`);
      console.log(`Pods (real containers, pulled from the registry): ${podsLine()}`);
      return `revision ${deployed.outputs.revision}, endpoint ${JSON.parse(deployed.outputs['service-endpoints']).join(', ')}`;
    });

    console.log('\n##### Pass 1: the model-uploaded dispatch runs the pipeline');
    await pipeline(1);
    console.log('\n##### Pass 2: the nightly run, nothing changed (same commit, same model)');
    await pipeline(2);
  } finally {
    console.log('\n=== Clean up');
    const timed = async (what: string, work: () => Promise<unknown>) => {
      const started = Date.now();
      await work().catch((error: unknown) => console.error(`${what} failed: ${String(error)}`));
      console.log(`${what}: ${formatDuration(Date.now() - started)}`);
    };
    for (const name of containers) {
      await timed(`removed container ${name}`, () => docker(['rm', '-f', name]));
    }
    await timed('stopped the dispatcher', async () => {
      await dispatcherServer?.stop();
      await eventGrid.stop();
    });
    // The stack first: its pods are containers that use the images.
    await timed('stopped the stack and removed its pods', () => stack.stop());
    // Every image of this run's registry (its port is never used again): pulled, or built and
    // tagged by build-push.
    await timed(`removed the images of ${stack.build.registry.host}`, async () => {
      const ids = new Set(
        (
          await docker([
            'image',
            'ls',
            '-q',
            '--filter',
            `reference=${stack.build.registry.host}/*/*`,
          ])
        )
          .split('\n')
          .filter(Boolean),
      );
      if (ids.size > 0) await docker(['image', 'rm', '-f', ...ids]);
    });
    const left = readdirSync(DEMO_DIR);
    console.log(
      `Stopped the stack and removed the demo containers; left for inspection: ${path.relative(REPO_ROOT, DEMO_DIR)}/{${left.join(',')}}`,
    );
  }
}

function printStages(): void {
  if (stages.length === 0) return;
  console.log('\n=== Summary');
  const width = Math.max(...stages.map((s) => s.name.length));
  console.log(`${'Stage'.padEnd(width)}  ${'Time'.padStart(9)}  Result`);
  for (const { name, milliseconds, result } of stages) {
    console.log(`${name.padEnd(width)}  ${formatDuration(milliseconds).padStart(9)}  ${result}`);
  }
  const total = stages.reduce((sum, s) => sum + s.milliseconds, 0);
  console.log(`${'Total'.padEnd(width)}  ${formatDuration(total).padStart(9)}`);
}

main().then(
  () => printStages(),
  (error: unknown) => {
    printStages();
    console.error(`\ndemo failed: ${error instanceof Error ? error.message : String(error)}`);
    process.exit(1);
  },
);
