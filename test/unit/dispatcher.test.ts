import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { generateKeyPairSync, verify } from 'node:crypto';
import { ConfigurationError } from '../../src/common/errors';
import {
  Dispatcher,
  type WebhookRequest,
} from '../../examples/model-upload-dispatcher/src/dispatcher';
import { decide } from '../../examples/model-upload-dispatcher/src/filter';
import {
  rateLimitWait,
  type GitHubRequest,
  type GitHubResponse,
} from '../../examples/model-upload-dispatcher/src/github';
import { RedactingLogger } from '../../examples/model-upload-dispatcher/src/redacting-logger';
import { readSettings, SETTING } from '../../examples/model-upload-dispatcher/src/settings';
import { ACCOUNT_ID, asCloudEvent, blobCreated, validationEvent } from '../support/event-grid';

const keys = generateKeyPairSync('rsa', { modulusLength: 2048 });
const PEM = keys.privateKey.export({ type: 'pkcs1', format: 'pem' }).toString();
const PAT = 'github_pat_11AAAAAAA0secretsecretsecret';

const baseEnv = {
  [SETTING.repository]: 'octo-org/ai-app',
  [SETTING.storageAccountId]: ACCOUNT_ID,
  [SETTING.container]: 'models',
  [SETTING.prefix]: 'digits/',
  [SETTING.apiUrl]: 'https://api.github.test',
};
const tokenEnv = { ...baseEnv, [SETTING.token]: PAT };
const appEnv = {
  ...baseEnv,
  [SETTING.appId]: '123456',
  [SETTING.installationId]: '987',
  [SETTING.privateKey]: PEM,
};

/** A scripted GitHub: answers from `script` in order, then 204/201 as GitHub would. */
class FakeGitHub {
  readonly requests: GitHubRequest[] = [];
  readonly waits: number[] = [];
  private tokenCount = 0;
  constructor(public script: Array<Partial<GitHubResponse>> = []) {}
  transport = async (request: GitHubRequest): Promise<GitHubResponse> => {
    this.requests.push(request);
    const scripted = this.script.shift();
    if (scripted) return { status: 500, headers: {}, body: '', ...scripted };
    if (request.url.pathname.endsWith('/access_tokens')) {
      this.tokenCount++;
      return {
        status: 201,
        headers: {},
        body: JSON.stringify({
          token: `ghs_installationtoken${this.tokenCount}`,
          expires_at: new Date(Date.now() + 3600_000).toISOString(),
        }),
      };
    }
    return { status: 204, headers: {}, body: '' };
  };
  /** A clock that only the dispatcher's waits move. */
  clock = Date.now();
  now = () => this.clock;
  wait = async (ms: number) => {
    this.waits.push(ms);
    this.clock += ms;
  };
  get dispatches() {
    return this.requests.filter((r) => r.url.pathname.endsWith('/dispatches'));
  }
}

function setup(
  env: Record<string, string> = tokenEnv,
  script: Array<Partial<GitHubResponse>> = [],
) {
  const github = new FakeGitHub(script);
  const lines: string[] = [];
  const dispatcher = new Dispatcher(readSettings(env), {
    transport: github.transport,
    wait: github.wait,
    now: github.now,
  });
  const sink = {
    info: (m: string) => lines.push(m),
    warn: (m: string) => lines.push(`warn: ${m}`),
    debug: (m: string) => lines.push(`debug: ${m}`),
  };
  const deliver = (request: Partial<WebhookRequest>) =>
    dispatcher.handle(
      { method: 'POST', headers: { 'aeg-event-type': 'Notification' }, body: '', ...request },
      new RedactingLogger(sink),
    );
  const post = (events: unknown, headers: Record<string, string> = {}) =>
    deliver({
      body: JSON.stringify(events),
      headers: { 'aeg-event-type': 'Notification', ...headers },
    });
  return { github, lines, deliver, post };
}

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
  });

  it('reads a GitHub App whose key was pasted with literal \\n', () => {
    const settings = readSettings({ ...appEnv, [SETTING.privateKey]: PEM.replace(/\n/g, '\\n') });
    expect(settings.auth.kind).toBe('app');
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

describe('Event Grid handshakes', () => {
  it('answers the Event Grid schema validation with the code', async () => {
    const { post, github } = setup();
    const event = validationEvent(ACCOUNT_ID, 'C0DE-1234');
    const response = await post([event], { 'aeg-event-type': 'SubscriptionValidation' });
    expect(response.status).toBe(200);
    expect(response.body).toEqual({ validationResponse: 'C0DE-1234' });
    expect(github.requests).toHaveLength(0);
  });

  it('refuses to validate a subscription on another storage account', async () => {
    const { post } = setup();
    const other = ACCOUNT_ID.replace('mlmodels', 'someoneelse');
    const response = await post([validationEvent(other)], {
      'aeg-event-type': 'SubscriptionValidation',
    });
    expect(response.status).toBe(403);
  });

  it("answers CloudEvents' OPTIONS abuse protection for Event Grid's origin only", async () => {
    const { deliver } = setup();
    const ok = await deliver({
      method: 'OPTIONS',
      headers: { 'webhook-request-origin': 'eventgrid.azure.net' },
    });
    expect(ok.status).toBe(200);
    expect(ok.headers['WebHook-Allowed-Origin']).toBe('eventgrid.azure.net');
    const china = await deliver({
      method: 'OPTIONS',
      headers: { 'webhook-request-origin': 'eventgrid.azure.cn' },
    });
    expect(china.headers['WebHook-Allowed-Origin']).toBe('eventgrid.azure.cn');
    const evil = await deliver({
      method: 'OPTIONS',
      headers: { 'webhook-request-origin': 'evil.example.com' },
    });
    expect(evil.status).toBe(403);
    expect(evil.headers['WebHook-Allowed-Origin']).toBeUndefined();
    expect((await deliver({ method: 'OPTIONS', headers: {} })).status).toBe(400);
  });

  it('refuses what is not a delivery', async () => {
    const { deliver, post } = setup();
    expect((await deliver({ body: 'not json' })).status).toBe(400);
    expect((await post([])).status).toBe(400);
    expect((await post({ eventType: 'x', id: '1', topic: ACCOUNT_ID })).status).toBe(400);
    expect((await post([{ id: '1' }])).status).toBe(400);
    expect((await deliver({ method: 'GET' })).status).toBe(405);
  });
});

describe('BlobCreated filtering', () => {
  const settings = readSettings(tokenEnv);

  it('builds the client payload from the event', () => {
    const event = blobCreated({ blob: 'digits/v3/digits.npz', etag: '0x8DCAFE', size: 20806 });
    const decision = decide(
      {
        id: String(event.id),
        type: 'Microsoft.Storage.BlobCreated',
        topic: ACCOUNT_ID,
        subject: String(event.subject),
        time: String(event.eventTime),
        data: event.data as Record<string, unknown>,
      },
      settings,
    );
    expect(decision).toEqual({
      action: 'dispatch',
      payload: {
        blob: 'digits/v3/digits.npz',
        container: 'models',
        url: 'https://mlmodels.blob.core.windows.net/models/digits/v3/digits.npz',
        etag: '0x8DCAFE',
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

  it('dispatches only finished blobs in the container under the prefix', async () => {
    const { post, github, lines } = setup();
    const response = await post([
      blobCreated({ blob: 'digits/v1/digits.npz', etag: '0x1' }),
      blobCreated({ blob: 'digits/v1/digits.npz', container: 'scratch' }),
      blobCreated({ blob: 'other/model.bin' }),
      blobCreated({ blob: 'digits/v1/' }),
      blobCreated({ blob: 'digits/v1/labels.txt', api: 'CreateFile', size: 0 }),
      { ...blobCreated({ blob: 'digits/v1/old.npz' }), eventType: 'Microsoft.Storage.BlobDeleted' },
    ]);
    expect(response.status).toBe(200);
    expect(github.dispatches).toHaveLength(1);
    const body = response.body as { dispatched: unknown[]; ignored: Array<{ reason: string }> };
    expect(body.dispatched).toEqual([{ blob: 'digits/v1/digits.npz', etag: '0x1' }]);
    expect(body.ignored.map((i) => i.reason)).toEqual([
      'container scratch, not models',
      'blob other/model.bin is outside prefix digits/',
      'blob digits/v1/ is a folder marker',
      'blob digits/v1/labels.txt was only created empty (CreateFile)',
      'event type Microsoft.Storage.BlobDeleted',
    ]);
    expect(lines.filter((l) => l.startsWith('Ignored'))).toHaveLength(5);
  });

  it('accepts CloudEvents, one event or a batch', async () => {
    const { deliver, github } = setup();
    const single = asCloudEvent(blobCreated({ blob: 'digits/a.npz', etag: '0xA' }));
    const one = await deliver({
      headers: { 'content-type': 'application/cloudevents+json; charset=utf-8' },
      body: JSON.stringify(single),
    });
    expect(one.status).toBe(200);
    const batch = [
      asCloudEvent(blobCreated({ blob: 'digits/b.npz', etag: '0xB' })),
      asCloudEvent(blobCreated({ blob: 'digits/c.npz', etag: '0xC' })),
    ];
    const two = await deliver({
      headers: { 'content-type': 'application/cloudevents-batch+json' },
      body: JSON.stringify(batch),
    });
    expect(two.status).toBe(200);
    const sent = github.dispatches.map((r) => JSON.parse(r.body).client_payload.blob);
    expect(sent).toEqual(['digits/a.npz', 'digits/b.npz', 'digits/c.npz']);
  });

  it('refuses a whole delivery holding an event from another account', async () => {
    const { post, github } = setup();
    const response = await post([
      blobCreated({ blob: 'digits/ok.npz' }),
      blobCreated({
        blob: 'digits/evil.npz',
        accountId: ACCOUNT_ID.replace('mlmodels', 'attacker'),
      }),
    ]);
    expect(response.status).toBe(403);
    expect(github.requests).toHaveLength(0);
  });

  it('matches the account id case-insensitively, as ARM does', async () => {
    const { post, github } = setup();
    const response = await post([
      blobCreated({
        blob: 'digits/x.npz',
        accountId: ACCOUNT_ID.toUpperCase().replace('/SUBSCRIPTIONS', '/subscriptions'),
      }),
    ]);
    expect(response.status).toBe(200);
    expect(github.dispatches).toHaveLength(1);
  });

  it('dispatches a blob version once even when Event Grid repeats it in a batch', async () => {
    const { post, github } = setup();
    const event = blobCreated({ blob: 'digits/x.npz', etag: '0x9' });
    await post([event, { ...event, id: 'another-id' }]);
    expect(github.dispatches).toHaveLength(1);
  });
});

describe('GitHub calls', () => {
  it('sends repository_dispatch with a fine-grained token', async () => {
    const { post, github } = setup();
    await post([blobCreated({ blob: 'digits/v2/digits.npz', etag: '0x8DC' })]);
    const [request] = github.requests;
    expect(request.url.toString()).toBe('https://api.github.test/repos/octo-org/ai-app/dispatches');
    expect(request.headers).toMatchObject({
      authorization: `Bearer ${PAT}`,
      accept: 'application/vnd.github+json',
      'x-github-api-version': '2022-11-28',
      'user-agent': expect.any(String),
    });
    const body = JSON.parse(request.body);
    expect(body.event_type).toBe('model-uploaded');
    expect(body.client_payload).toMatchObject({ blob: 'digits/v2/digits.npz', etag: '0x8DC' });
  });

  it('signs in as a GitHub App: an RS256 JWT, then a narrowed installation token, reused', async () => {
    const { post, github } = setup(appEnv);
    await post([blobCreated({ blob: 'digits/1.npz', etag: '0x1' })]);
    await post([blobCreated({ blob: 'digits/2.npz', etag: '0x2' })]);
    const paths = github.requests.map((r) => r.url.pathname);
    expect(paths).toEqual([
      '/app/installations/987/access_tokens',
      '/repos/octo-org/ai-app/dispatches',
      '/repos/octo-org/ai-app/dispatches',
    ]);
    const jwt = github.requests[0].headers.authorization.replace(/^Bearer /, '');
    const [header, claims, signature] = jwt.split('.');
    expect(JSON.parse(Buffer.from(header, 'base64url').toString())).toEqual({
      alg: 'RS256',
      typ: 'JWT',
    });
    const parsed = JSON.parse(Buffer.from(claims, 'base64url').toString());
    expect(parsed.iss).toBe('123456');
    expect(parsed.exp - parsed.iat).toBeLessThanOrEqual(600);
    expect(
      verify(
        'sha256',
        Buffer.from(`${header}.${claims}`),
        keys.publicKey,
        Buffer.from(signature, 'base64url'),
      ),
    ).toBe(true);
    expect(JSON.parse(github.requests[0].body)).toEqual({
      repositories: ['ai-app'],
      permissions: { contents: 'write' },
    });
    expect(
      github.dispatches.every((r) => r.headers.authorization === 'Bearer ghs_installationtoken1'),
    ).toBe(true);
  });

  it('mints a new installation token after a 401', async () => {
    const { post, github } = setup(appEnv);
    await post([blobCreated({ blob: 'digits/1.npz' })]);
    github.script = [{ status: 401, body: '{"message":"Bad credentials"}' }];
    const response = await post([blobCreated({ blob: 'digits/2.npz' })]);
    expect(response.status).toBe(200);
    const last = github.requests.slice(-3).map((r) => r.url.pathname.split('/').pop());
    expect(last).toEqual(['dispatches', 'access_tokens', 'dispatches']);
    expect(github.requests.at(-1)!.headers.authorization).toBe('Bearer ghs_installationtoken2');
  });

  it('retries 5xx with backoff, bounded', async () => {
    const { post, github } = setup(tokenEnv, [{ status: 502 }, { status: 503 }]);
    const response = await post([blobCreated({ blob: 'digits/1.npz' })]);
    expect(response.status).toBe(200);
    expect(github.dispatches).toHaveLength(3);
    expect(github.waits).toHaveLength(2);

    const failing = setup(
      tokenEnv,
      Array.from({ length: 10 }, () => ({ status: 500 })),
    );
    const failed = await failing.post([blobCreated({ blob: 'digits/1.npz' })]);
    expect(failed.status).toBe(503);
    expect(failing.github.dispatches).toHaveLength(5);
  });

  it('waits out a secondary rate limit that names its Retry-After', async () => {
    const { post, github } = setup(tokenEnv, [
      {
        status: 403,
        headers: { 'retry-after': '7' },
        body: '{"message":"You have exceeded a secondary rate limit."}',
      },
    ]);
    const response = await post([blobCreated({ blob: 'digits/1.npz' })]);
    expect(response.status).toBe(200);
    expect(github.waits).toEqual([7000]);
  });

  it('hands a long rate-limit pause back to Event Grid instead of waiting', async () => {
    const reset = String(Math.floor(Date.now() / 1000) + 1800);
    const { post, github } = setup(tokenEnv, [
      {
        status: 429,
        headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': reset },
        body: '{"message":"API rate limit exceeded"}',
      },
    ]);
    const response = await post([blobCreated({ blob: 'digits/1.npz' })]);
    expect(response.status).toBe(503);
    expect(Number(response.headers['retry-after'])).toBeGreaterThan(1700);
    expect(github.dispatches).toHaveLength(1);
    expect(github.waits).toEqual([]);
  });

  it('gives up within the time Event Grid waits for an answer', async () => {
    const limited = {
      status: 403,
      headers: { 'retry-after': '20' },
      body: '{"message":"You have exceeded a secondary rate limit."}',
    };
    const { post, github } = setup(tokenEnv, [limited, limited]);
    const response = await post([blobCreated({ blob: 'digits/1.npz' })]);
    // 20 s waited once; a second 20 s would pass Event Grid's 30 s and cause a redelivery.
    expect(github.waits).toEqual([20_000]);
    expect(response.status).toBe(503);
    expect(github.dispatches).toHaveLength(2);
  });

  it('hands a secondary rate limit without Retry-After (a minute) back to Event Grid', async () => {
    const { post, github } = setup(tokenEnv, [
      { status: 403, body: '{"message":"You have exceeded a secondary rate limit."}' },
    ]);
    const response = await post([blobCreated({ blob: 'digits/1.npz' })]);
    expect(response.status).toBe(503);
    expect(response.headers['retry-after']).toBe('60');
    expect(github.waits).toEqual([]);
  });

  it('does not retry a refusal, and says why', async () => {
    const { post, github } = setup(tokenEnv, [
      { status: 403, body: '{"message":"Resource not accessible by personal access token"}' },
    ]);
    const response = await post([blobCreated({ blob: 'digits/1.npz' })]);
    expect(response.status).toBe(502);
    expect((response.body as { error: string }).error).toMatch(/HTTP 403: Resource not accessible/);
    expect(github.dispatches).toHaveLength(1);
  });

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

  it('keeps tokens out of the log even when GitHub echoes them', async () => {
    const echo = (auth: string) => ({
      status: 422,
      body: JSON.stringify({ message: `Invalid request with ${auth}` }),
    });
    const app = setup(appEnv);
    await app.post([blobCreated({ blob: 'digits/1.npz' })]);
    const installationToken = 'ghs_installationtoken1';
    app.github.script = [echo(installationToken)];
    await app.post([blobCreated({ blob: 'digits/2.npz' })]);
    const pat = setup(tokenEnv, [echo(PAT)]);
    await pat.post([blobCreated({ blob: 'digits/3.npz' })]);
    const log = [...app.lines, ...pat.lines].join('\n');
    expect(log).toMatch(/Invalid request with \*\*\*/);
    expect(log).not.toContain(installationToken);
    expect(log).not.toContain(PAT);
    const jwt = app.github.requests[0].headers.authorization.replace(/^Bearer /, '');
    expect(log).not.toContain(jwt);
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
    const optional = [SETTING.maxWaitSeconds];
    for (const name of read.filter((n) => !optional.includes(n as never)))
      expect(set).toContain(name);
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
});
