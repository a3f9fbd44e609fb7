import { randomBytes } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { hostname, networkInterfaces } from 'node:os';
import type { EntraServer } from '../servers/entra';
import { GithubOidcServer } from '../servers/github-oidc';
import { AZURITE_ACCOUNT, Azurite } from './azurite';
import { BuildStack } from './build-stack';
import { CLUSTER_NAME, DeployStack } from './deploy-stack';
import { ProxiedNetwork } from './proxied-network';
import { S3Stack } from './s3-stack';
import { federatedEntra } from './stack';

/** The production names the actions use behind the proxy; nothing here resolves them. */
export const PRODUCTION = {
  blob: `${AZURITE_ACCOUNT}.blob.core.windows.net`,
  entra: 'login.microsoftonline.com',
  registry: 'myacr.azurecr.io',
  registryData: 'myacr.eastus.data.azurecr.io',
  arm: 'management.azure.com',
  /** AKS names a cluster's API server `<dns prefix>-<hash>.hcp.<region>.azmk8s.io`. */
  aks: `${CLUSTER_NAME}-dns-${randomBytes(4).toString('hex')}.hcp.eastus.azmk8s.io`,
  awsRegion: 'us-east-1',
  sts: 'sts.us-east-1.amazonaws.com',
  bucket: 'ai-models',
  /** S3's virtual-hosted-style name of the bucket, what the action derives from bucket and region. */
  s3: 'ai-models.s3.us-east-1.amazonaws.com',
} as const;

/**
 * This machine's own host name and the address it resolves to, for the GitHub OIDC endpoint:
 * a name that is not loopback by its spelling (`localhost`, 127.x), so the proxy would carry it
 * unless NO_PROXY names it, while the name still leads here. Debian maps it to 127.0.1.1,
 * containers to their own interface address; the endpoint listens on whichever it is.
 */
export async function ownHostName(): Promise<{ name: string; address: string }> {
  const name = hostname();
  let address: string;
  try {
    address = (await lookup(name, { family: 4 })).address;
  } catch (error) {
    throw new Error(
      `The proxy tests reach the GitHub OIDC double by this machine's host name, '${name}', ` +
        `which does not resolve (${String(error)}). Map it to an address of this machine in /etc/hosts.`,
    );
  }
  const local =
    address.startsWith('127.') ||
    Object.values(networkInterfaces()).some((list) => list?.some((i) => i.address === address));
  if (!local) {
    throw new Error(
      `This machine's host name '${name}' resolves to ${address}, which is not one of its own ` +
        `addresses: the GitHub OIDC double cannot listen there.`,
    );
  }
  return { name, address };
}

/**
 * Every service of the three actions, reachable only by its production name through a real
 * forward proxy (ProxiedNetwork): one GitHub OIDC issuer (direct, by this machine's host name),
 * one Entra at login.microsoftonline.com trusted by Azurite (the blob account), the ACR-like
 * registry and its data endpoint, ARM and the AKS API server, STS and the S3 gateway.
 */
export class ProxiedStack {
  readonly network = new ProxiedNetwork();
  readonly oidc: GithubOidcServer;
  readonly entra: EntraServer;
  readonly azurite = new Azurite();
  readonly build: BuildStack;
  readonly deploy: DeployStack;
  readonly s3: S3Stack;

  constructor(readonly oidcHost: { name: string; address: string }) {
    this.oidc = new GithubOidcServer({ hostName: oidcHost.name, listenAddress: oidcHost.address });
    this.entra = federatedEntra(this.oidc);
    const identity = { oidc: this.oidc, entra: this.entra };
    this.build = new BuildStack(
      { hostName: PRODUCTION.registry, dataHostName: PRODUCTION.registryData },
      identity,
    );
    this.deploy = new DeployStack({ hostName: PRODUCTION.aks }, { identity });
    this.s3 = new S3Stack({}, { region: PRODUCTION.awsRegion, oidc: this.oidc });
  }

  async start(): Promise<this> {
    await Promise.all([this.oidc.start(), this.entra.start(), this.azurite.start()]);
    await Promise.all([this.build.start(), this.deploy.start(), this.s3.start()]);
    this.network
      .route(PRODUCTION.blob, `https://127.0.0.1:${this.azurite.port}`)
      .route(PRODUCTION.entra, this.entra.authorityHost)
      .route(PRODUCTION.registry, this.build.registry.url)
      .route(PRODUCTION.registryData, this.build.registry.data.localOrigin)
      .route(PRODUCTION.arm, this.deploy.arm.endpoint)
      .route(PRODUCTION.aks, this.deploy.kube.url)
      .route(PRODUCTION.sts, this.s3.sts.endpoint)
      .route(PRODUCTION.s3, this.s3.gateway.endpoint);
    await this.network.start();
    return this;
  }

  async stop(): Promise<void> {
    await Promise.allSettled([
      this.network.stop(),
      this.build.stop(),
      this.deploy.stop(),
      this.s3.stop(),
      this.azurite.stop(),
    ]);
    await Promise.allSettled([this.oidc.stop(), this.entra.stop()]);
  }

  /**
   * The environment of a job on a self-hosted runner behind the proxy: the proxy for https and
   * http, NO_PROXY as an administrator writes it (loopback, and the OIDC endpoint's host, which
   * is reached directly), and the job's OIDC token endpoint.
   */
  jobEnv(noProxy = `localhost,127.0.0.1,${this.oidcHost.name}`): Record<string, string> {
    return {
      ...this.oidc.jobEnv(),
      HTTPS_PROXY: this.network.proxyUrl,
      HTTP_PROXY: this.network.proxyUrl,
      NO_PROXY: noProxy,
      GITHUB_REPOSITORY: 'octo-org/ai-app',
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_RUN_ID: '7',
    };
  }
}
