import * as net from 'node:net';
import type { AccessToken, TokenCredential } from '@azure/identity';
import { cloudByName } from '../../src/common/clouds';
import {
  createOidcCredential,
  TokenSource,
  type AzureIdentitySettings,
} from '../../src/common/credential';
import { ConfigurationError } from '../../src/common/errors';
import { MemoryLogger } from '../../src/common/logger';
import { freePort, listenOnLoopback } from '../support/ports';

const identity: AzureIdentitySettings = {
  clientId: '2b7c8f5e-0d3a-4c7e-9a61-5f1d3e8c9b20',
  tenantId: '72f988bf-86f1-41af-91ab-2d7cd011db47',
  audience: 'api://AzureADTokenExchange',
  cloud: cloudByName('AzurePublicCloud'),
  authorityHost: 'https://login.microsoftonline.com',
  customAuthority: false,
};
const oidcEnv = { ACTIONS_ID_TOKEN_REQUEST_URL: 'http://x', ACTIONS_ID_TOKEN_REQUEST_TOKEN: 't' };

describe('createOidcCredential', () => {
  const idToken = async () => 'id-token';

  it('explains how to grant id-token: write when the job has no OIDC endpoint', () => {
    expect(() => createOidcCredential(identity, idToken, {}, new MemoryLogger())).toThrow(
      /permissions: id-token: write/,
    );
  });

  it('names the missing ids and their environment fallbacks', () => {
    expect(() =>
      createOidcCredential(
        { ...identity, clientId: undefined },
        idToken,
        oidcEnv,
        new MemoryLogger(),
      ),
    ).toThrow(/'client-id' \(or AZURE_CLIENT_ID\)/);
    expect(() =>
      createOidcCredential(
        { ...identity, tenantId: undefined, clientId: undefined },
        idToken,
        oidcEnv,
        new MemoryLogger(),
      ),
    ).toThrow(/'client-id' \(or AZURE_CLIENT_ID\) and 'tenant-id' \(or AZURE_TENANT_ID\)/);
  });

  it('refuses a client id that is not a GUID', () => {
    expect(() =>
      createOidcCredential(
        { ...identity, clientId: 'my-app' },
        idToken,
        oidcEnv,
        new MemoryLogger(),
      ),
    ).toThrow("Invalid client-id 'my-app'. Expected a GUID");
  });
});

describe('createOidcCredential behind a proxy', () => {
  // A proxy that wants a password, and one that is not there: the token request gets no answer.
  let proxy: net.Server;
  let proxyPort: number;
  let closedPort: number;
  const saved = process.env.HTTPS_PROXY;

  beforeAll(async () => {
    proxy = net.createServer((socket) => {
      socket.once('data', () =>
        socket.end(
          'HTTP/1.1 407 Proxy Authentication Required\r\n' +
            'Proxy-Authenticate: Basic realm="corp"\r\nContent-Length: 0\r\n\r\n',
        ),
      );
    });
    proxyPort = await listenOnLoopback(proxy);
    closedPort = await freePort();
  });
  afterAll(async () => {
    if (saved === undefined) delete process.env.HTTPS_PROXY;
    else process.env.HTTPS_PROXY = saved;
    await new Promise((resolve) => proxy.close(resolve));
  });

  const tokenVia = (proxyUrl: string) => {
    process.env.HTTPS_PROXY = proxyUrl;
    const credential = createOidcCredential(
      identity,
      async () => 'id-token',
      oidcEnv,
      new MemoryLogger(),
    );
    return new TokenSource(credential, new MemoryLogger()).get(
      'https://storage.azure.com/.default',
    );
  };

  it("reports the proxy's demand for a password, not a bare network_error", async () => {
    const failure = tokenVia(`http://127.0.0.1:${proxyPort}`);
    await expect(failure).rejects.toThrow(ConfigurationError);
    await expect(failure).rejects.toThrow(
      /^Could not get an Entra token for https:\/\/storage\.azure\.com\/\.default: The proxy http:\/\/127\.0\.0\.1:\d+ requires authentication \(HTTP 407\) for CONNECT login\.microsoftonline\.com:443/,
    );
  });

  it('names the authority it could not reach, and why', async () => {
    await expect(tokenVia(`http://127.0.0.1:${closedPort}`)).rejects.toThrow(
      /^Could not get an Entra token for https:\/\/storage\.azure\.com\/\.default: https:\/\/login\.microsoftonline\.com did not answer \(cannot reach proxy http:\/\/127\.0\.0\.1:\d+: .*ECONNREFUSED.*\)\. Check that this runner reaches it/,
    );
  });
});

describe('TokenSource', () => {
  function fakeCredential(lifetimeMs: number) {
    const calls: string[] = [];
    const credential: TokenCredential = {
      async getToken(scope): Promise<AccessToken> {
        calls.push(String(scope));
        await new Promise((resolve) => setTimeout(resolve, 5));
        return { token: `token-${calls.length}`, expiresOnTimestamp: Date.now() + lifetimeMs };
      },
    };
    return { credential, calls };
  }

  it('shares one request among concurrent callers, caches, and masks the token', async () => {
    const { credential, calls } = fakeCredential(3_600_000);
    const logger = new MemoryLogger();
    const tokens = new TokenSource(credential, logger);
    const [a, b] = await Promise.all([tokens.get('s/.default'), tokens.get('s/.default')]);
    expect(a).toBe('token-1');
    expect(b).toBe('token-1');
    expect(await tokens.get('s/.default')).toBe('token-1');
    expect(calls).toEqual(['s/.default']);
    expect(logger.secrets).toEqual(['token-1']);
  });

  it('is the TokenCredential SDK clients get: the same cached, masked token, with its expiry', async () => {
    const { credential, calls } = fakeCredential(3_600_000);
    const logger = new MemoryLogger();
    const tokens = new TokenSource(credential, logger);
    const [sdk, ours] = await Promise.all([
      tokens.getToken(['s/.default']),
      tokens.get('s/.default'),
    ]);
    expect(sdk.token).toBe('token-1');
    expect(ours).toBe('token-1');
    expect(sdk.expiresOnTimestamp).toBeGreaterThan(Date.now() + 3_500_000);
    expect(calls).toEqual(['s/.default']);
    expect(logger.secrets).toEqual(['token-1']);
    await expect(tokens.getToken(['a/.default', 'b/.default'])).rejects.toThrow(
      'Expected one token scope, got 2.',
    );
  });

  it('fetches a new token when the cached one is about to expire', async () => {
    const { credential, calls } = fakeCredential(60_000);
    const tokens = new TokenSource(credential, new MemoryLogger());
    await tokens.get('s/.default');
    await tokens.get('s/.default');
    expect(calls).toHaveLength(2);
  });

  it('turns a federated-credential mismatch into advice', async () => {
    const credential: TokenCredential = {
      async getToken() {
        throw new Error(
          'AADSTS70021: No matching federated identity record found for presented assertion.',
        );
      },
    };
    await expect(new TokenSource(credential, new MemoryLogger()).get('s/.default')).rejects.toThrow(
      /federated credential whose issuer is https:\/\/token.actions.githubusercontent.com/,
    );
  });
});
