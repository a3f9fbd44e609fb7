import { createHash, randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { PutObjectCommand } from '@aws-sdk/client-s3';
import { AKS_SERVER_APP_ID } from '../servers/kube-api';
import { RESOURCE_GROUP, CLUSTER_NAME, SUBSCRIPTION_ID } from '../support/deploy-stack';
import type { ProxyTunnel } from '../support/proxied-network';
import { ownHostName, PRODUCTION, ProxiedStack } from '../support/proxied-stack';
import { errorLines, runAction, type ActionRun } from '../support/run-action';
import { READER_ROLE } from '../support/s3-stack';
import { CLIENT_ID, TENANT_ID } from '../support/stack';

const sha256 = (data: Buffer) => createHash('sha256').update(data).digest('hex');

/**
 * A self-hosted runner behind a corporate proxy: the actions address every service by its
 * production name and with its default endpoints (storage-account, no authority-host, the
 * default ARM endpoint, AWS's regional STS and virtual-hosted S3 endpoints, the AKS FQDN in the
 * kubeconfig ARM returns). Those names resolve nowhere here; only the proxy, a real squid, routes
 * them to the local services, so an action that went around it would fail. Each test also checks
 * squid's log: every connection to a service was a CONNECT tunnel squid opened for the proxy
 * account, to exactly the hosts that action needs, and the GitHub OIDC endpoint, which NO_PROXY
 * names (as this machine's host name: spelled as no loopback address is, so only NO_PROXY keeps it
 * off the proxy), was reached directly.
 */
describe('the actions behind a forward proxy (squid), by production host names', () => {
  let stack: ProxiedStack;
  let workspace: string;
  const model = randomBytes(2 * 1024 * 1024 + 77);
  const labels = Buffer.from('0 zero\n1 one\n');

  beforeAll(async () => {
    stack = new ProxiedStack(await ownHostName());
    await stack.start();
    const container = await stack.azurite.container('models');
    await container.getBlockBlobClient('digits.npz').uploadData(model);
    await container.getBlockBlobClient('labels.txt').uploadData(labels);
    const s3 = await stack.s3.bucket(PRODUCTION.bucket);
    await s3.send(
      new PutObjectCommand({ Bucket: PRODUCTION.bucket, Key: 'digits.npz', Body: model }),
    );
    await s3.send(
      new PutObjectCommand({ Bucket: PRODUCTION.bucket, Key: 'labels.txt', Body: labels }),
    );
    await stack.build.registry.pushImage('ai/app-base', '1', {
      'app/app.py': 'print("the app without its model")\n',
    });
  }, 120_000);
  afterAll(() => stack?.stop());
  beforeEach(() => (workspace = mkdtempSync(path.join(tmpdir(), 'workspace-'))));
  afterEach(() => rmSync(workspace, { recursive: true, force: true }));

  it('resolves none of the production names on this machine: only the proxy reaches them', async () => {
    for (const name of Object.values(PRODUCTION).filter((value) => value.includes('.'))) {
      await expect(lookup(name)).rejects.toThrow();
    }
  });

  /** Runs an action as a job behind the proxy, and checks what went through squid. */
  async function runBehindProxy(
    action: string,
    inputs: Record<string, string>,
    hosts: string[],
    env: Record<string, string> = {},
  ): Promise<ActionRun> {
    const tunnelsBefore = (await stack.network.tunnels()).length;
    const connectionsBefore = stack.network.connections.length;
    const tokensBefore = stack.oidc.issuedTokens.length;
    const run = await runAction(action, inputs, {
      env: { ...stack.jobEnv(), ...env },
      cwd: workspace,
    });
    expect(errorLines(run)).toEqual([]);
    expect(run.exitCode).toBe(0);

    const tunnels = (await stack.network.tunnels()).slice(tunnelsBefore);
    const connections = stack.network.connections.slice(connectionsBefore);
    // Every request went through squid: each connection a service got came from squid's own
    // address, one per CONNECT squid carried for the proxy account, to exactly these hosts.
    expect(tunnels.length).toBeGreaterThan(0);
    for (const tunnel of tunnels) {
      expect(tunnel).toMatchObject({
        user: stack.network.user,
        result: 'TCP_TUNNEL/200',
        method: 'CONNECT',
      });
    }
    const targets = tunnels.map((tunnel) => tunnel.target);
    expect([...new Set(targets)].sort()).toEqual(hosts.map((host) => `${host}:443`).sort());
    expect(connections.map((connection) => connection.peer)).toEqual(
      connections.map(() => stack.network.proxyAddress),
    );
    expect(connections.map((connection) => `${connection.hostName}:443`).sort()).toEqual(
      [...targets].sort(),
    );
    // The OIDC endpoint was asked directly: squid never saw its host.
    expect(stack.oidc.issuedTokens.length).toBeGreaterThan(tokensBefore);
    expect(targets.join(' ')).not.toContain(stack.oidcHost.name);

    // Nothing secret reached the log: tokens, keys, the proxy's password.
    const secrets = [
      ...stack.oidc.issuedTokens,
      ...stack.entra.issuedTokens,
      ...stack.build.registry.tokens.issuedSecrets,
      ...stack.deploy.arm.bearerTokens,
      ...stack.deploy.kube.bearerTokens,
      ...stack.s3.sts.issued.flatMap((c) => [c.accessKeyId, c.secretAccessKey, c.sessionToken]),
      stack.network.password,
      encodeURIComponent(stack.network.password),
      Buffer.from(`${stack.network.user}:${stack.network.password}`).toString('base64'),
    ];
    const printed = `${run.stdout}\n${run.stderr}`
      .split('\n')
      .filter((line) => !line.startsWith('::add-mask::'))
      .join('\n');
    expect(secrets.filter((secret) => printed.includes(secret))).toEqual([]);
    return run;
  }

  /** fetch-model's inputs for the Azure account, named as a user names it. */
  const azureFetch = {
    'storage-account': 'devstoreaccount1',
    container: 'models',
    blobs: 'digits.npz\nlabels.txt',
    'block-size': '1MiB',
    'client-id': CLIENT_ID,
    'tenant-id': TENANT_ID,
  };

  it('fetch-model from Azure Blob: the storage account by name, Entra by its default authority', async () => {
    const before = stack.entra.tokenRequests.length;
    const run = await runBehindProxy('fetch-model', azureFetch, [
      PRODUCTION.entra,
      PRODUCTION.blob,
    ]);
    expect(readFileSync(path.join(workspace, 'model', 'digits.npz')).equals(model)).toBe(true);
    expect(JSON.parse(run.outputs.files)[0]).toMatchObject({
      uri: `https://${PRODUCTION.blob}/models/digits.npz`,
      sha256: sha256(model),
    });
    expect(stack.entra.tokenRequests.slice(before)).toEqual([
      { clientId: CLIENT_ID, scope: 'https://storage.azure.com/.default' },
    ]);
  });

  it('fetch-model from S3: AWS regional STS, the bucket by its virtual-hosted name', async () => {
    const gatewayBefore = stack.s3.gateway.requests.length;
    const stsBefore = stack.s3.sts.requests.length;
    const run = await runBehindProxy(
      'fetch-model',
      {
        provider: 's3',
        bucket: PRODUCTION.bucket,
        region: PRODUCTION.awsRegion,
        'role-to-assume': READER_ROLE,
        blobs: 'digits.npz\nlabels.txt',
      },
      [PRODUCTION.sts, PRODUCTION.s3],
    );
    expect(readFileSync(path.join(workspace, 'model', 'labels.txt')).equals(labels)).toBe(true);
    expect(JSON.parse(run.outputs.files)[0].sha256).toBe(sha256(model));
    expect(stack.s3.sts.requests.slice(stsBefore)).toEqual([
      { action: 'AssumeRoleWithWebIdentity', roleArn: READER_ROLE, sessionName: 'fetch-model' },
    ]);
    const requests = stack.s3.gateway.requests.slice(gatewayBefore);
    expect(requests.length).toBeGreaterThanOrEqual(2);
    for (const request of requests) {
      expect(request).toMatchObject({ host: PRODUCTION.s3, bucket: PRODUCTION.bucket });
      expect(request.denied).toBeUndefined();
    }
  });

  it('build-push (model-layer) to ACR: token exchange on the login server, blob reads redirected to the data endpoint', async () => {
    // The model as the pipeline hands it over: fetch-model's outputs, fetched behind the proxy.
    const fetched = await runBehindProxy('fetch-model', azureFetch, [
      PRODUCTION.entra,
      PRODUCTION.blob,
    ]);
    const dataBefore = stack.build.registry.data.requests.length;
    const sha = randomBytes(20).toString('hex');
    // No smoke test: it runs the image with dockerd, which has no route to myacr.azurecr.io.
    const run = await runBehindProxy(
      'build-push',
      {
        registry: PRODUCTION.registry,
        repository: 'ai/classifier',
        mode: 'model-layer',
        'base-image': 'ai/app-base:1',
        'model-path': fetched.outputs.path,
        'model-files': fetched.outputs.files,
        'model-digest': fetched.outputs['model-digest'],
        'client-id': CLIENT_ID,
        'tenant-id': TENANT_ID,
      },
      [PRODUCTION.entra, PRODUCTION.registry, PRODUCTION.registryData],
      { GITHUB_SHA: sha },
    );
    expect(run.outputs.image).toMatch(
      new RegExp(`^${PRODUCTION.registry}/ai/classifier@sha256:[0-9a-f]{64}$`),
    );
    const manifest = await stack.build.registry.get(
      'ai/classifier',
      `manifests/${run.outputs.digest}`,
    );
    expect(manifest.status).toBe(200);
    // The base image's config was read through ACR's redirect, without the registry token.
    const reads = stack.build.registry.data.requests.slice(dataBefore);
    expect(reads.length).toBeGreaterThan(0);
    expect(reads.every((read) => !read.authorization && read.status === 200)).toBe(true);
    expect(stack.build.registry.tokens.requests.map((request) => request.endpoint)).toContain(
      'exchange',
    );
  });

  it('deploy-aks: the default ARM endpoint, then the API server by the FQDN in its kubeconfig', async () => {
    mkdirSync(path.join(workspace, 'k8s'));
    writeFileSync(
      path.join(workspace, 'k8s', 'app.yaml'),
      `apiVersion: v1
kind: Namespace
metadata:
  name: behind-proxy
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: classifier
  namespace: behind-proxy
spec:
  replicas: 1
  selector:
    matchLabels: { app: classifier }
  template:
    metadata:
      labels: { app: classifier }
    spec:
      containers:
        - name: app
          image: ${PRODUCTION.registry}/ai/classifier:latest
`,
    );
    const image = `${PRODUCTION.registry}/ai/classifier@sha256:${'3'.repeat(64)}`;
    const armBefore = stack.deploy.arm.calls.length;
    const entraBefore = stack.entra.tokenRequests.length;
    const run = await runBehindProxy(
      'deploy-aks',
      {
        'client-id': CLIENT_ID,
        'tenant-id': TENANT_ID,
        'subscription-id': SUBSCRIPTION_ID,
        'resource-group': RESOURCE_GROUP,
        'cluster-name': CLUSTER_NAME,
        manifests: 'k8s/',
        images: image,
      },
      [PRODUCTION.entra, PRODUCTION.arm, PRODUCTION.aks],
      { GITHUB_SHA: '0123456789abcdef0123456789abcdef01234567' },
    );
    expect(stack.deploy.arm.calls.slice(armBefore)).toEqual([
      { action: 'listClusterUserCredential', appId: CLIENT_ID },
    ]);
    expect(
      stack.entra.tokenRequests
        .slice(entraBefore)
        .map((request) => request.scope)
        .sort(),
    ).toEqual([`${AKS_SERVER_APP_ID}/.default`, 'https://management.azure.com/.default']);
    const deployment = stack.deploy.kube.get('Deployment', 'behind-proxy', 'classifier')!;
    expect(deployment.spec.template.spec.containers[0].image).toBe(image);
    expect(deployment.status.availableReplicas).toBe(1);
    expect(run.outputs['rolled-back']).toBe('false');
  });

  it('a proxy that refuses the password is a clear error, and the password stays out of the log', async () => {
    const tunnelsBefore = (await stack.network.tunnels()).length;
    const wrong = new URL(stack.network.proxyUrl);
    wrong.password = 'not-the-password';
    const run = await runAction(
      'fetch-model',
      {
        'storage-account': 'devstoreaccount1',
        container: 'models',
        blobs: 'labels.txt',
        'sas-token': stack.azurite.containerSas('models', 'r'),
      },
      { env: { ...stack.jobEnv(), HTTPS_PROXY: wrong.href }, cwd: workspace },
    );
    expect(run.exitCode).toBe(1);
    expect(errorLines(run).join('\n')).toContain(
      `The proxy http://${wrong.host} requires authentication (HTTP 407) for CONNECT ` +
        `${PRODUCTION.blob}:443. Put the proxy's user and password in HTTPS_PROXY`,
    );
    expect(`${run.stdout}${run.stderr}`).not.toContain('not-the-password');
    const refused = (tunnel: ProxyTunnel) =>
      tunnel.result === 'TCP_DENIED/407' && tunnel.target === `${PRODUCTION.blob}:443`;
    const tunnels = await stack.network.tunnels((all) => all.slice(tunnelsBefore).some(refused));
    expect(tunnels.slice(tunnelsBefore).filter(refused)).not.toEqual([]);
  });

  it('without the OIDC host in NO_PROXY, the token request goes to the proxy, which cannot reach it', async () => {
    const tokensBefore = stack.oidc.issuedTokens.length;
    const tunnelsBefore = (await stack.network.tunnels()).length;
    const run = await runAction(
      'fetch-model',
      {
        'storage-account': 'devstoreaccount1',
        container: 'models',
        blobs: 'labels.txt',
        'client-id': CLIENT_ID,
        'tenant-id': TENANT_ID,
      },
      { env: stack.jobEnv('localhost,127.0.0.1'), cwd: workspace },
    );
    expect(run.exitCode).toBe(1);
    expect(errorLines(run).join('\n')).toContain(
      `Could not get a GitHub OIDC token: ${new URL(stack.oidc.requestUrl).origin} did not ` +
        'answer (tunneling socket could not be established, statusCode=403). Check that this ' +
        'runner reaches it, directly or through the proxy HTTP_PROXY names (hosts in NO_PROXY ' +
        'go direct).',
    );
    expect(stack.oidc.issuedTokens.length).toBe(tokensBefore);
    const oidcAuthority = new URL(stack.oidc.requestUrl).host;
    const tunnels = await stack.network.tunnels((all) =>
      all.slice(tunnelsBefore).some((tunnel) => tunnel.target === oidcAuthority),
    );
    expect(tunnels.slice(tunnelsBefore)).toContainEqual(
      expect.objectContaining({ target: oidcAuthority, result: 'TCP_DENIED/403' }),
    );
  });
});
