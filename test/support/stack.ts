import { Azurite } from './azurite';
import { EntraServer } from '../servers/entra';
import { GithubOidcServer, type GithubOidcOptions } from '../servers/github-oidc';
import { localTls } from './tls';

export const TENANT_ID = '72f988bf-86f1-41af-91ab-2d7cd011db47';
export const CLIENT_ID = '2b7c8f5e-0d3a-4c7e-9a61-5f1d3e8c9b20';

/**
 * A GitHub OIDC issuer double and an Entra double whose apps trust that issuer for this
 * repository's main branch: the identity every stack signs in with. Stacks built on the same
 * one (the demo's PipelineStack) share a single federated app registration, as one real
 * Azure set-up does.
 */
export interface Identity {
  oidc: GithubOidcServer;
  entra: EntraServer;
}

/** An Entra double whose apps `clientIds` trust `oidc` for octo-org/ai-app's main branch. */
export function federatedEntra(
  oidc: GithubOidcServer,
  clientIds = [CLIENT_ID],
  tokenLifetimeSeconds?: number,
): EntraServer {
  return new EntraServer({
    tenantId: TENANT_ID,
    tls: localTls(),
    trustedKeys: () => oidc.jwks,
    tokenLifetimeSeconds,
    apps: clientIds.map((clientId) => ({
      clientId,
      federatedCredentials: [
        {
          issuer: 'https://token.actions.githubusercontent.com',
          subject: 'repo:octo-org/ai-app:ref:refs/heads/main',
          audience: 'api://AzureADTokenExchange',
        },
      ],
    })),
  });
}

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
    this.entra = federatedEntra(this.oidc);
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
