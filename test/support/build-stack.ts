import type { EntraServer } from '../servers/entra';
import { GithubOidcServer } from '../servers/github-oidc';
import { Registry, type RegistryOptions } from './registry';
import { CLIENT_ID, federatedEntra, TENANT_ID, type Identity } from './stack';

/** A plain registry user for fixtures and for the username/password path. */
export const REGISTRY_USER = { username: 'ci-pusher', password: 'p4ss-' + 'w0rd-for-tests' };

/**
 * The embedded stack for build-push: the GitHub OIDC issuer and Entra doubles (as fetch-model's
 * Stack has them, trusting this repository's main branch), and a real Distribution registry
 * whose token auth is the ACR token double, which exchanges that Entra app's tokens. Given a
 * shared `identity`, it uses that one and leaves starting and stopping it to its owner.
 */
export class BuildStack {
  readonly oidc: GithubOidcServer;
  readonly entra: EntraServer;
  readonly registry: Registry;
  private readonly ownsIdentity: boolean;

  constructor(options: Partial<RegistryOptions> = {}, identity?: Identity) {
    this.ownsIdentity = !identity;
    this.oidc = identity?.oidc ?? new GithubOidcServer();
    this.entra = identity?.entra ?? federatedEntra(this.oidc);
    this.registry = new Registry({
      tenantId: TENANT_ID,
      entraKeys: () => [this.entra.key.jwk],
      users: { [REGISTRY_USER.username]: REGISTRY_USER.password },
      ...options,
    });
  }

  async start(): Promise<this> {
    const identity = this.ownsIdentity ? [this.oidc.start(), this.entra.start()] : [];
    await Promise.all([...identity, this.registry.start()]);
    return this;
  }

  async stop(): Promise<void> {
    const identity = this.ownsIdentity ? [this.oidc.stop(), this.entra.stop()] : [];
    await Promise.all([...identity, this.registry.stop()]);
  }

  /** The Azure identity inputs a workflow would pass (ids are not secrets). */
  identityInputs(): Record<string, string> {
    return {
      'client-id': CLIENT_ID,
      'tenant-id': TENANT_ID,
      'authority-host': this.entra.authorityHost,
    };
  }

  /** The environment of a job with `id-token: write` on a push to main. */
  jobEnv(sha: string): Record<string, string> {
    return {
      ...this.oidc.jobEnv(),
      GITHUB_SHA: sha,
      GITHUB_REPOSITORY: 'octo-org/ai-app',
      GITHUB_SERVER_URL: 'https://github.com',
    };
  }
}
