import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { generateKeyPairSync } from 'node:crypto';
import { ConfigurationError } from '../../src/common/errors';
import {
  azureEtag,
  decide,
  isSafeBlobName,
} from '../../examples/model-upload-dispatcher/src/filter';
import { rateLimitWait } from '../../examples/model-upload-dispatcher/src/github';
import { readSettings, SETTING } from '../../examples/model-upload-dispatcher/src/settings';
import { ACCOUNT_ID, blobCreated } from '../support/event-grid';

const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = keys.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const PAT = 'github_pat_11AAAAAAA0secretsecretsecret';
const TENANT = '72f988bf-86f1-41af-91ab-2d7cd011db47';

const baseEnv = {
  [SETTING.repository]: 'octo-org/ai-app',
  [SETTING.storageAccountId]: ACCOUNT_ID,
  [SETTING.container]: 'models',
  [SETTING.prefix]: 'digits/',
  [SETTING.apiUrl]: 'https://api.github.test',
  [SETTING.entraTenantId]: TENANT,
  [SETTING.entraAudience]: 'api://model-upload-dispatcher',
};
const tokenEnv = { ...baseEnv, [SETTING.token]: PAT };
const appEnv = {
  ...baseEnv,
  [SETTING.appId]: '123456',
  [SETTING.installationId]: '987',
  [SETTING.privateKey]: PEM,
};

describe('dispatcher settings', () => {
  const expectError = (env: Record<string, string | undefined>, message: RegExp) => {
    expect(() => readSettings(env)).toThrow(ConfigurationError);
    expect(() => readSettings(env)).toThrow(message);
  };

  it('reads a token configuration', () => {
    const settings = readSettings(tokenEnv);
    expect(settings.repository).toEqual({ owner: 'octo-org', repo: 'ai-app' });
    expect(settings.auth).toEqual({ kind: 'token', token: PAT });
    expect(settings.eventType).toBe('model-uploaded');
    expect(settings.storageAccountId).toBe(ACCOUNT_ID.toLowerCase());
    expect(settings.maxWaitMs).toBe(20_000);
    expect(settings.entra).toEqual({
      tenantId: TENANT,
      audiences: ['api://model-upload-dispatcher'],
      authorityHost: new URL('https://login.microsoftonline.com'),
      eventGridAppId: '4962773b-9cdb-44cf-a8bf-237846a00ab7',
    });
  });

  it('reads a GitHub App whose key was pasted with literal \\n', () => {
    const settings = readSettings({ ...appEnv, [SETTING.privateKey]: PEM.replace(/\n/g, '\\n') });
    expect(settings.auth).toMatchObject({ kind: 'app', privateKeyPem: PEM });
  });

  it('names the setting, quotes the value and says what is expected', () => {
    expectError(
      { ...tokenEnv, [SETTING.repository]: undefined },
      /GITHUB_REPOSITORY is not set\. Expected \{owner\}\/\{repo\}/,
    );
    expectError(
      { ...tokenEnv, [SETTING.repository]: 'just-a-name' },
      /GITHUB_REPOSITORY 'just-a-name'\. Expected \{owner\}\/\{repo\}/,
    );
    expectError(
      { ...tokenEnv, [SETTING.storageAccountId]: 'mlmodels' },
      /MODELS_STORAGE_ACCOUNT_ID 'mlmodels'\. Expected \/subscriptions/,
    );
    expectError(
      { ...tokenEnv, [SETTING.container]: 'Models_1' },
      /MODELS_CONTAINER 'Models_1'\. Expected a container name/,
    );
    expectError(
      { ...tokenEnv, [SETTING.prefix]: '/digits' },
      /MODELS_PREFIX '\/digits'\. Expected a blob name prefix/,
    );
    expectError(
      { ...tokenEnv, [SETTING.apiUrl]: 'ftp://x' },
      /GITHUB_API_URL 'ftp:\/\/x'\. Expected an https URL/,
    );
    expectError(
      { ...tokenEnv, [SETTING.maxWaitSeconds]: 'soon' },
      /GITHUB_MAX_WAIT_SECONDS 'soon'/,
    );
    expectError({ ...tokenEnv, [SETTING.eventType]: 'x'.repeat(101) }, /at most 100 characters/);
  });

  it('sends tokens to GitHub over https only, plain http only to a loopback host', () => {
    for (const url of [
      'http://api.github.com',
      'http://10.0.0.5:8080/api/v3',
      'http://127.0.0.1.evil.example/api',
      'https://user:pass@api.github.com',
    ]) {
      expectError(
        { ...tokenEnv, [SETTING.apiUrl]: url },
        /GITHUB_API_URL '.*'\. Expected an https URL .*plain http only to a loopback host/,
      );
    }
    for (const url of ['http://127.0.0.1:8080', 'http://localhost:3000/api/v3', 'http://[::1]:9']) {
      expect(readSettings({ ...tokenEnv, [SETTING.apiUrl]: url }).apiUrl.protocol).toBe('http:');
    }
    expect(
      readSettings({
        ...tokenEnv,
        [SETTING.apiUrl]: 'https://ghes.example.com/api/v3/',
      }).apiUrl.toString(),
    ).toBe('https://ghes.example.com/api/v3');
  });

  it('wants the Entra tenant and audience that protect the webhook', () => {
    expectError({ ...tokenEnv, [SETTING.entraTenantId]: undefined }, /ENTRA_TENANT_ID is not set/);
    expectError(
      { ...tokenEnv, [SETTING.entraTenantId]: 'contoso' },
      /ENTRA_TENANT_ID 'contoso'\. Expected the directory \(tenant\) id, a GUID/,
    );
    expectError({ ...tokenEnv, [SETTING.entraAudience]: undefined }, /ENTRA_AUDIENCE is not set/);
    expectError(
      { ...tokenEnv, [SETTING.entraAudience]: 'my webhook' },
      /ENTRA_AUDIENCE 'my webhook'\. Expected the webhook app registration's client id/,
    );
    expectError(
      { ...tokenEnv, [SETTING.entraAuthorityHost]: 'http://login.microsoftonline.com' },
      /ENTRA_AUTHORITY_HOST 'http:\/\/login\.microsoftonline\.com'\. Expected an https URL/,
    );
    expectError(
      { ...tokenEnv, [SETTING.entraAuthorityHost]: 'http://127.0.0.1:4444' },
      /ENTRA_AUTHORITY_HOST .* Expected an https URL/,
    );
    const both = readSettings({
      ...tokenEnv,
      [SETTING.entraAudience]: '5f0a8c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b, api://dispatcher',
    });
    expect(both.entra.audiences).toEqual([
      '5f0a8c1e-2b3d-4e5f-8a9b-0c1d2e3f4a5b',
      'api://dispatcher',
    ]);
  });

  it('wants exactly one way to sign in', () => {
    expectError(baseEnv, /No GitHub credentials\. Expected GITHUB_APP_ID/);
    expectError({ ...appEnv, [SETTING.token]: PAT }, /Both GITHUB_TOKEN and GITHUB_APP_ID/);
    expectError(
      { ...appEnv, [SETTING.installationId]: '' },
      /GITHUB_APP_INSTALLATION_ID is not set/,
    );
    expectError(
      { ...appEnv, [SETTING.appId]: 'my app' },
      /GITHUB_APP_ID 'my app'\. Expected the app's numeric id/,
    );
  });

  it('never quotes a secret back', () => {
    const badKey =
      '-----BEGIN RSA PRIVATE KEY-----\nTOPSECRETKEYMATERIAL\n-----END RSA PRIVATE KEY-----';
    expectError(
      { ...appEnv, [SETTING.privateKey]: badKey },
      /GITHUB_APP_PRIVATE_KEY: not a PEM private key/,
    );
    expect(() => readSettings({ ...appEnv, [SETTING.privateKey]: badKey })).not.toThrow(
      /TOPSECRET/,
    );
    expect(() => readSettings({ ...tokenEnv, [SETTING.token]: 'github_pat_SECRETab cd' })).toThrow(
      /contains whitespace/,
    );
    expect(() =>
      readSettings({ ...tokenEnv, [SETTING.token]: 'github_pat_SECRETab cd' }),
    ).not.toThrow(/SECRETab/);
  });
});

describe('BlobCreated filtering', () => {
  const settings = readSettings(tokenEnv);
  const gridEvent = (event: Record<string, unknown>) => ({
    id: String(event.id),
    type: String(event.eventType),
    topic: String(event.topic),
    subject: String(event.subject),
    time: String(event.eventTime),
    data: event.data as Record<string, unknown>,
  });

  it('builds the client payload from the event', () => {
    const event = blobCreated({
      blob: 'digits/v3/digits.npz',
      etag: '0x8DCAFE0123456789',
      size: 20806,
    });
    const decision = decide(gridEvent(event), settings);
    expect(decision).toEqual({
      action: 'dispatch',
      payload: {
        blob: 'digits/v3/digits.npz',
        container: 'models',
        url: 'https://mlmodels.blob.core.windows.net/models/digits/v3/digits.npz',
        etag: '0x8DCAFE0123456789',
        size: 20806,
        content_type: 'application/octet-stream',
        storage_account: 'mlmodels',
        event_id: event.id,
        event_time: '2026-11-25T09:30:00.1234567Z',
      },
    });
    // GitHub refuses a client_payload with more than 10 top-level properties.
    expect(Object.keys((decision as { payload: object }).payload).length).toBeLessThanOrEqual(10);
  });

  it("accepts Azure's ETag bare or quoted, and nothing else", () => {
    expect(azureEtag('0x8DC2B1D5E6F7A8B')).toBe('0x8DC2B1D5E6F7A8B');
    expect(azureEtag('"0x8DC2B1D5E6F7A8B"')).toBe('0x8DC2B1D5E6F7A8B');
    for (const forged of [
      '0x8DC2B1D5E6F7A8B\nmodel-blobs<<EOF',
      '0x8DC2B1D5E6F7A8B\n',
      '"0x8DC2B1D5E6F7A8B',
      '0x8DC2B1D5E6F7A8B"',
      'W/"0x8DC2B1D5E6F7A8B"',
      '0x8DC2B1D5E6F7A8G',
      '0x12',
      'abc',
      '',
      42,
      undefined,
    ]) {
      expect(azureEtag(forged)).toBeUndefined();
    }
  });

  it('accepts blob names of a strict character set only', () => {
    for (const name of ['digits/v3/digits.npz', 'labels.txt', 'a/b-c_d/e.f', 'v1.2/model.onnx']) {
      expect(isSafeBlobName(name)).toBe(true);
    }
    for (const name of [
      'digits/x.npz\nsynset.txt',
      'digits/x.npz,other.npz',
      'digits/x.npz@etag=0x1',
      'digits/../secrets.txt',
      'digits/./x',
      'digits//x',
      '/digits/x',
      'digits/x y.npz',
      'digits/$(id).npz',
      'digits/ü.npz',
      'a'.repeat(1025),
    ]) {
      expect(isSafeBlobName(name)).toBe(false);
    }
  });

  it('refuses forged eTags and odd blob names instead of dispatching them', () => {
    const forged = [
      blobCreated({
        blob: 'digits/x.npz',
        etag: '0x8DC2B1D5E6F7A8B\nmodel-blobs<<EOF\nevil.npz\nEOF',
      }),
      blobCreated({ blob: 'digits/x.npz', etag: '' }),
      blobCreated({ blob: 'digits/x.npz\nlabels.txt' }),
      blobCreated({ blob: 'digits/x.npz@etag=0x8DC2B1D5E6F7A8B' }),
      blobCreated({ blob: 'digits/../../etc/passwd' }),
    ];
    const decisions = forged.map((event) => decide(gridEvent(event), settings));
    expect(decisions.map((d) => d.action)).toEqual(Array(forged.length).fill('ignore'));
    expect((decisions[0] as { reason: string }).reason).toMatch(/no Azure ETag/);
    expect((decisions[3] as { reason: string }).reason).toMatch(/outside the accepted characters/);
  });

  it('passes informational fields only in their documented shapes', () => {
    const event = blobCreated({
      blob: 'digits/x.npz',
      contentType: 'text/plain\n::stop-commands::x',
    });
    (event.data as Record<string, unknown>).url = 'javascript:alert(1)';
    const decision = decide(gridEvent(event), settings) as unknown as {
      payload: Record<string, unknown>;
    };
    expect(decision.payload.url).toBe('');
    expect(decision.payload.content_type).toBe('');
  });
});

describe('GitHub rate limits', () => {
  it('tells rate limits from permission errors', () => {
    const now = 1_700_000_000_000;
    const answer = (status: number, headers: Record<string, string>, body = '') => ({
      status,
      headers,
      body,
    });
    expect(rateLimitWait(answer(403, { 'retry-after': '30' }), now)).toBe(30_000);
    expect(
      rateLimitWait(
        answer(403, { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': String(now / 1000 + 90) }),
        now,
      ),
    ).toBe(90_000);
    expect(
      rateLimitWait(answer(403, {}, '{"message":"You have exceeded a secondary rate limit"}'), now),
    ).toBe(60_000);
    expect(rateLimitWait(answer(429, {}), now)).toBe(60_000);
    expect(
      rateLimitWait(
        answer(403, { 'x-ratelimit-remaining': '4999' }, '{"message":"Forbidden"}'),
        now,
      ),
    ).toBeUndefined();
    expect(rateLimitWait(answer(502, { 'retry-after': '5' }), now)).toBeUndefined();
  });
});

describe('infrastructure template', () => {
  // No Bicep compiler runs here, so at least the wiring between template and code is checked.
  const bicep = readFileSync(
    path.join(__dirname, '../../examples/model-upload-dispatcher/infra/main.bicep'),
    'utf8',
  );
  const entry = readFileSync(
    path.join(__dirname, '../../examples/model-upload-dispatcher/src/functions/model-uploaded.ts'),
    'utf8',
  );

  it('sets every app setting the function reads, and only those', () => {
    const set = [...bicep.matchAll(/\{ name: '([A-Za-z_]+)', value:/g)].map((m) => m[1]);
    const platform = ['AzureWebJobsStorage__accountName', 'APPLICATIONINSIGHTS_CONNECTION_STRING'];
    const read = Object.values(SETTING) as string[];
    for (const name of set.filter((n) => !platform.includes(n))) expect(read).toContain(name);
    const optional: string[] = [SETTING.maxWaitSeconds, SETTING.eventGridAppId];
    for (const name of read.filter((n) => !optional.includes(n))) expect(set).toContain(name);
  });

  it("subscribes the function's route to BlobCreated, one event per delivery", () => {
    const route = /app\.http\('([^']+)'/.exec(entry)![1];
    expect(bicep).toContain(`/api/${route}?code=`);
    expect(bicep).toContain("includedEventTypes: ['Microsoft.Storage.BlobCreated']");
    expect(bicep).toContain('maxEventsPerBatch: 1');
    expect(bicep).toMatch(
      /subjectBeginsWith: '\/blobServices\/default\/containers\/\$\{modelsContainer\}\/blobs\/\$\{modelsPrefix\}'/,
    );
  });

  it('delivers with an Entra token for the audience the function checks', () => {
    expect(bicep).toMatch(/azureActiveDirectoryTenantId: entraTenantId/);
    expect(bicep).toMatch(/azureActiveDirectoryApplicationIdOrUri: webhookAudience/);
    expect(bicep).toMatch(/\{ name: 'ENTRA_AUDIENCE', value: webhookAudience \}/);
    expect(bicep).toMatch(/\{ name: 'ENTRA_TENANT_ID', value: entraTenantId \}/);
  });
});
