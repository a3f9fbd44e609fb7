import { randomBytes } from 'node:crypto';
import * as path from 'node:path';
import { ArmServer } from '../servers/arm';
import type { EntraServer } from '../servers/entra';
import { GithubOidcServer } from '../servers/github-oidc';
import { AKS_SERVER_APP_ID, KubeApiServer, type KubeApiOptions } from '../servers/kube-api';
import { runAction, type ActionRun } from './run-action';
import { CLIENT_ID, federatedEntra, TENANT_ID, type Identity } from './stack';
import { localTls } from './tls';

export const SUBSCRIPTION_ID = '3f2c1a9e-5b7d-4e8f-a1c2-9d0e7f6b5a43';
export const RESOURCE_GROUP = 'rg-ai-app';
export const CLUSTER_NAME = 'aks-ai-app';
/** Another app registration that trusts this repository but holds no role on the cluster. */
export const UNPRIVILEGED_CLIENT_ID = '9a8b7c6d-5e4f-4a3b-8c2d-1e0f9a8b7c6d';

/**
 * The stack for deploy-aks: a GitHub OIDC issuer double, an Entra double trusting it, ARM's
 * AKS credential actions, and a Kubernetes API server double. The user kubeconfig ARM hands
 * out names kubelogin (an Entra-enabled cluster); the admin one carries a static token. Given
 * a shared `identity`, it uses that one and leaves starting and stopping it to its owner (its
 * Entra should then also hold UNPRIVILEGED_CLIENT_ID if a test signs in as that app).
 */
export class DeployStack {
  readonly oidc: GithubOidcServer;
  readonly entra: EntraServer;
  readonly arm: ArmServer;
  readonly kube: KubeApiServer;
  readonly adminToken = randomBytes(32).toString('hex');
  private readonly ownsIdentity: boolean;

  constructor(
    kubeOptions: Partial<KubeApiOptions> = {},
    options: { identity?: Identity; entraTokenLifetimeSeconds?: number } = {},
  ) {
    const tls = localTls();
    const identity = options.identity;
    this.ownsIdentity = !identity;
    this.oidc = identity?.oidc ?? new GithubOidcServer();
    this.entra =
      identity?.entra ??
      federatedEntra(
        this.oidc,
        [CLIENT_ID, UNPRIVILEGED_CLIENT_ID],
        options.entraTokenLifetimeSeconds,
      );
    this.kube = new KubeApiServer({
      tls,
      trustedKeys: () => [this.entra.key.jwk],
      staticTokens: [this.adminToken],
      readyDelayMs: 150,
      loadBalancerDelayMs: 200,
      ...kubeOptions,
    });
    this.arm = new ArmServer({
      tls,
      trustedKeys: () => [this.entra.key.jwk],
      deniedAppIds: [UNPRIVILEGED_CLIENT_ID],
      clusters: [
        {
          subscriptionId: SUBSCRIPTION_ID,
          resourceGroup: RESOURCE_GROUP,
          name: CLUSTER_NAME,
          kubeconfig: (admin) => (admin ? this.adminKubeconfig() : this.userKubeconfig()),
        },
      ],
    });
  }

  async start(): Promise<this> {
    const identity = this.ownsIdentity ? [this.oidc.start(), this.entra.start()] : [];
    await Promise.all([...identity, this.arm.start(), this.kube.start()]);
    return this;
  }

  async stop(): Promise<void> {
    const identity = this.ownsIdentity ? [this.oidc.stop(), this.entra.stop()] : [];
    await Promise.all([...identity, this.arm.stop(), this.kube.stop()]);
  }

  /** What `az aks get-credentials` gets for an Entra-enabled cluster: the kubelogin exec plugin. */
  userKubeconfig(): string {
    return this.kube.kubeconfig(
      {
        exec: {
          apiVersion: 'client.authentication.k8s.io/v1beta1',
          command: 'kubelogin',
          args: [
            'get-token',
            '--environment',
            'AzurePublicCloud',
            '--server-id',
            AKS_SERVER_APP_ID,
            '--client-id',
            '80faf920-1908-4b52-b5ef-a8e7bedfc67a',
            '--tenant-id',
            TENANT_ID,
            '--login',
            'devicecode',
          ],
          interactiveMode: 'IfAvailable',
          provideClusterInfo: false,
        },
      },
      localTls().cert,
    );
  }

  /** A local-account kubeconfig with a static token (listClusterAdminCredential). */
  adminKubeconfig(): string {
    return this.kube.kubeconfig({ token: this.adminToken }, localTls().cert);
  }

  /** The inputs a workflow would pass to reach the cluster through ARM. */
  clusterInputs(): Record<string, string> {
    return {
      'client-id': CLIENT_ID,
      'tenant-id': TENANT_ID,
      'authority-host': this.entra.authorityHost,
      'subscription-id': SUBSCRIPTION_ID,
      'resource-group': RESOURCE_GROUP,
      'cluster-name': CLUSTER_NAME,
      'arm-endpoint': this.arm.endpoint,
    };
  }

  /**
   * Runs the deploy-aks bundle as a job of this repository does: signed in through ARM with the
   * job's OIDC token, manifests from `k8s/` in `workspace` unless `inputs` say otherwise.
   */
  runDeploy(
    inputs: Record<string, string>,
    workspace: string,
    env: Record<string, string> = {},
  ): Promise<ActionRun> {
    return runAction(
      'deploy-aks',
      { ...this.clusterInputs(), manifests: 'k8s/', ...inputs },
      {
        env: {
          ...this.oidc.jobEnv(),
          RUNNER_TEMP: path.join(workspace, '.runner-temp'),
          ...env,
        },
        cwd: workspace,
      },
    );
  }
}
