import { GithubApiServer } from '../servers/github-api';
import { BuildStack, REGISTRY_USER } from './build-stack';
import { DeployStack } from './deploy-stack';
import { Stack } from './stack';

/** The repository the pipeline runs in: the one the Entra app's federated credential names. */
export const PIPELINE_REPOSITORY = 'octo-org/ai-app';

/**
 * The whole pipeline's embedded stack, as one Azure set-up plus GitHub: ONE GitHub OIDC issuer
 * double and ONE Entra double (one app registration with a federated credential for this
 * repository), trusted alike by Azurite (the model storage), the real Distribution registry's
 * ACR token double, ARM and the Kubernetes API double (whose pods run as real containers,
 * pulled from that registry); and the GitHub REST API double that receives the model-upload
 * dispatcher's repository_dispatch.
 */
export class PipelineStack {
  /** The identity and the model storage: OIDC issuer, Entra, Azurite. */
  readonly storage = new Stack();
  readonly build: BuildStack;
  readonly deploy: DeployStack;
  readonly github = new GithubApiServer();

  constructor() {
    const identity = { oidc: this.storage.oidc, entra: this.storage.entra };
    this.build = new BuildStack(
      // The registry also knows a plain user: how a person pulls the pushed image by hand.
      { users: { [REGISTRY_USER.username]: REGISTRY_USER.password } },
      identity,
    );
    // The cluster runs the pods for real, pulling from the registry as a node with AcrPull does.
    this.deploy = new DeployStack(
      {
        containers: {
          registry: () => ({ server: this.build.registry.host, ...REGISTRY_USER }),
        },
      },
      { identity },
    );
  }

  get oidc() {
    return this.storage.oidc;
  }

  get entra() {
    return this.storage.entra;
  }

  async start(): Promise<this> {
    await this.storage.start({ inMemory: true });
    // The registry first: the cluster's nodes sign in to it when they start.
    await Promise.all([this.build.start(), this.github.start()]);
    await this.deploy.start();
    return this;
  }

  async stop(): Promise<void> {
    // Every part, even after a failed start: each stop() ignores what never started.
    await Promise.allSettled([this.build.stop(), this.deploy.stop(), this.github.stop()]);
    await this.storage.stop();
  }

  /** The Azure identity inputs every action gets (ids, not secrets): the same for all three. */
  identityInputs(): Record<string, string> {
    return this.storage.identityInputs();
  }

  /** The environment of a job with `id-token: write` in this repository at `sha`. */
  jobEnv(sha: string, runId: string): Record<string, string> {
    return {
      ...this.oidc.jobEnv(),
      GITHUB_SHA: sha,
      GITHUB_REPOSITORY: PIPELINE_REPOSITORY,
      GITHUB_SERVER_URL: 'https://github.com',
      GITHUB_RUN_ID: runId,
    };
  }
}
