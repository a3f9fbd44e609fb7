import { EntraServer } from '../servers/entra';
import { GithubOidcServer } from '../servers/github-oidc';
import { Registry, type RegistryOptions } from './registry';
import { CLIENT_ID, TENANT_ID } from './stack';
import { localTls } from './tls';

/** A plain registry user for fixtures and for the username/password path. */
export const REGISTRY_USER = { username: 'ci-pusher', password: 'p4ss-' + 'w0rd-for-tests' };

/**
 * The embedded stack for build-push: the GitHub OIDC issuer and Entra doubles (as fetch-model's
 * Stack has them, trusting this repository's main branch), and a real Distribution registry
 * whose token auth is the ACR token double, which exchanges that Entra app's tokens.
 */
export class BuildStack {
  readonly oidc = new GithubOidcServer();
  readonly entra: EntraServer;
  readonly registry: Registry;

  constructor(options: Partial<RegistryOptions> = {}) {
    this.entra = new EntraServer({
      tenantId: TENANT_ID,
      tls: localTls(),
      trustedKeys: () => this.oidc.jwks,
      apps: [
        {
          clientId: CLIENT_ID,
          federatedCredentials: [
            {
              issuer: 'https://token.actions.githubusercontent.com',
              subject: 'repo:octo-org/ai-app:ref:refs/heads/main',
              audience: 'api://AzureADTokenExchange',
            },
          ],
        },
      ],
    });
    this.registry = new Registry({
      tenantId: TENANT_ID,
      entraKeys: () => [this.entra.key.jwk],
      users: { [REGISTRY_USER.username]: REGISTRY_USER.password },
      ...options,
    });
  }

  async start(): Promise<this> {
    await Promise.all([this.oidc.start(), this.entra.start(), this.registry.start()]);
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all([this.oidc.stop(), this.entra.stop(), this.registry.stop()]);
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
