import { Azurite } from './azurite';
import { EntraServer } from '../servers/entra';
import { GithubOidcServer, type GithubOidcOptions } from '../servers/github-oidc';
import { localTls } from './tls';

export const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const CLIENT_ID = '2b7c8f5e-0d3a-4c7e-9a61-5f1d3e8c9b20';

/**
 * The embedded stack for fetch-model: a GitHub OIDC issuer double, an Entra double whose app
 * trusts that issuer for this repository, and a real Azurite that accepts the Entra tokens.
 */
export class Stack {
  readonly oidc: GithubOidcServer;
  readonly entra: EntraServer;
  readonly azurite = new Azurite();

  constructor(oidcOptions: GithubOidcOptions = {}) {
    this.oidc = new GithubOidcServer(oidcOptions);
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
  }

  async start(options: { inMemory?: boolean } = {}): Promise<this> {
    await Promise.all([this.oidc.start(), this.entra.start(), this.azurite.start(options)]);
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all([this.oidc.stop(), this.entra.stop(), this.azurite.stop()]);
  }

  /** The Azure identity inputs a workflow would pass (ids are not secrets). */
  identityInputs(): Record<string, string> {
    return {
      'client-id': CLIENT_ID,
      'tenant-id': TENANT_ID,
      'authority-host': this.entra.authorityHost,
    };
  }
}
