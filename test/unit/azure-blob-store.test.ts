import type { AccessToken, TokenCredential } from '@azure/identity';
import { TokenSource } from '../../src/common/credential';
import { InsecureTransportError } from '../../src/common/http';
import { MemoryLogger } from '../../src/common/logger';
import { AzureBlobStore, type BlobAuth } from '../../src/fetch-model/azure-blob';

/**
 * Credentials reach storage only over TLS, whichever layer holds them: the SDK's bearer policy
 * (which the store's endpoint check and the transport back up) or the SAS in every URL.
 */
describe('the Azure store sends credentials only over https', () => {
  const requested: string[] = [];
  const credential: TokenCredential = {
    async getToken(scope): Promise<AccessToken> {
      requested.push(String(scope));
      return { token: 'eyJ.secret.token', expiresOnTimestamp: Date.now() + 3_600_000 };
    },
  };
  const store = (auth: BlobAuth) =>
    new AzureBlobStore({
      // A name that never resolves: a refusal must come before any connection.
      endpoint: new URL('http://models.example.invalid'),
      container: 'models',
      auth,
      maxConnections: 1,
      logger: new MemoryLogger(),
      retry: { maxAttempts: 1, baseDelayMs: 1, maxDelayMs: 1, maxRetryAfterMs: 1 },
    });

  it('refuses the Entra token over plain http before a token is even fetched', async () => {
    const tokens = new TokenSource(credential, new MemoryLogger());
    const reading = store({ kind: 'oidc', tokens }).head({ name: 'model.bin' });
    await expect(reading).rejects.toThrow(/not permitted for non-TLS protected \(non-https\) URLs/);
    expect(requested).toEqual([]);
  });

  it.each([
    ['properties', (target: AzureBlobStore) => target.head({ name: 'model.bin' })],
    ['a listing', (target: AzureBlobStore) => target.list('resnet/')],
    [
      'a range',
      (target: AzureBlobStore) =>
        target.openRange({ name: 'model.bin', size: 10, etag: '"0x1"', uri: '' }, 0, 9),
    ],
  ])('refuses to send the SAS for %s over plain http, before connecting', async (_, call) => {
    const reading = call(store({ kind: 'sas', query: 'sv=2023-11-03&sp=rl&sig=c2lnbmF0dXJl' }));
    await expect(reading).rejects.toThrow(InsecureTransportError);
  });
});
