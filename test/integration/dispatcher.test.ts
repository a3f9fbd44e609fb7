import { Dispatcher } from '../../examples/model-upload-dispatcher/src/dispatcher';
import { LocalDispatcherServer } from '../../examples/model-upload-dispatcher/src/local-server';
import { readSettings, SETTING } from '../../examples/model-upload-dispatcher/src/settings';
import { GithubApiServer, type GithubApp } from '../servers/github-api';
import { ACCOUNT_ID, asCloudEvent, blobCreated, validationEvent } from '../support/event-grid';

/**
 * The dispatcher served over HTTP (as the Functions host would serve its trigger), driven the
 * way Event Grid drives a webhook, calling the GitHub API double over HTTP.
 */
describe('model-upload dispatcher against the GitHub API double', () => {
  const github = new GithubApiServer();
  let app: GithubApp;
  let pat: string;
  const running: LocalDispatcherServer[] = [];
  const lines: string[] = [];
  const sink = {
    info: (m: string) => lines.push(m),
    warn: (m: string) => lines.push(`warn: ${m}`),
    debug: (m: string) => lines.push(`debug: ${m}`),
  };

  beforeAll(async () => {
    await github.start();
    app = github.addApp(['octo-org/ai-app', 'octo-org/other']);
    pat = github.addPersonalToken(['octo-org/ai-app']);
  });
  afterAll(async () => {
    await Promise.all(running.map((server) => server.stop()));
    await github.stop();
    const log = lines.join('\n');
    // Nothing secret reached the function's log in any test.
    for (const token of [...github.issuedTokens, pat]) expect(log).not.toContain(token);
    expect(log).not.toContain('PRIVATE KEY');
  });

  async function endpoint(auth: Record<string, string>, extra: Record<string, string> = {}) {
    const settings = readSettings({
      [SETTING.repository]: 'octo-org/ai-app',
      [SETTING.apiUrl]: github.url,
      [SETTING.storageAccountId]: ACCOUNT_ID,
      [SETTING.container]: 'models',
      [SETTING.prefix]: 'digits/',
      ...auth,
      ...extra,
    });
    const server = new LocalDispatcherServer(new Dispatcher(settings), sink);
    running.push(server);
    return server.start();
  }
  const appAuth = () => ({
    [SETTING.appId]: app.appId,
    [SETTING.installationId]: app.installationId,
    [SETTING.privateKey]: app.privateKeyPem,
  });

  const deliver = async (url: string, events: unknown, headers: Record<string, string> = {}) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'aeg-event-type': 'Notification', ...headers },
      body: JSON.stringify(events),
    });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      body: text ? JSON.parse(text) : undefined,
    };
  };

  it('validates the subscription, then dispatches each uploaded model as the GitHub App', async () => {
    const url = await endpoint(appAuth());
    const validation = await deliver(url, [validationEvent(ACCOUNT_ID, 'code-42')], {
      'aeg-event-type': 'SubscriptionValidation',
    });
    expect(validation).toMatchObject({ status: 200, body: { validationResponse: 'code-42' } });

    const options = await fetch(url, {
      method: 'OPTIONS',
      headers: { 'WebHook-Request-Origin': 'eventgrid.azure.net' },
    });
    expect(options.status).toBe(200);
    expect(options.headers.get('webhook-allowed-origin')).toBe('eventgrid.azure.net');

    const before = github.dispatches.length;
    const first = await deliver(url, [
      blobCreated({ blob: 'digits/v7/digits.npz', etag: '0x8DD1', size: 20806 }),
    ]);
    expect(first.status).toBe(200);
    const second = await deliver(
      url,
      asCloudEvent(blobCreated({ blob: 'digits/v7/labels.txt', etag: '0x8DD2' })),
      {
        'content-type': 'application/cloudevents+json',
      },
    );
    expect(second.status).toBe(200);

    const sent = github.dispatches.slice(before);
    expect(
      sent.map((d) => [d.repository, d.eventType, d.clientPayload.blob, d.clientPayload.etag]),
    ).toEqual([
      ['octo-org/ai-app', 'model-uploaded', 'digits/v7/digits.npz', '0x8DD1'],
      ['octo-org/ai-app', 'model-uploaded', 'digits/v7/labels.txt', '0x8DD2'],
    ]);
    expect(sent[0].clientPayload).toMatchObject({
      container: 'models',
      size: 20806,
      url: 'https://mlmodels.blob.core.windows.net/models/digits/v7/digits.npz',
    });
    // One installation token, narrowed to the repository, served both deliveries.
    expect(new Set(sent.map((d) => d.token)).size).toBe(1);
    expect(github.issuedTokens).toContain(sent[0].token);
    expect(sent[0].headers['x-github-api-version']).toBe('2022-11-28');
  });

  it('dispatches with a fine-grained token', async () => {
    const url = await endpoint({ [SETTING.token]: pat });
    const response = await deliver(url, [blobCreated({ blob: 'digits/pat.npz', etag: '0x77' })]);
    expect(response.status).toBe(200);
    expect(github.dispatches.at(-1)).toMatchObject({
      token: pat,
      clientPayload: { blob: 'digits/pat.npz' },
    });
  });

  it('reports a token without Contents: write as a refusal, not retried', async () => {
    const readOnly = github.addPersonalToken(['octo-org/ai-app'], {
      contents: 'read',
      metadata: 'read',
    });
    const url = await endpoint({ [SETTING.token]: readOnly });
    const before = github.requests.length;
    const response = await deliver(url, [blobCreated({ blob: 'digits/ro.npz' })]);
    expect(response.status).toBe(502);
    expect(response.body.error).toMatch(/HTTP 403: Resource not accessible by integration/);
    expect(github.requests.length - before).toBe(1);
  });

  it("reports a repository the app's installation does not cover", async () => {
    const url = await endpoint(appAuth(), { [SETTING.repository]: 'octo-org/not-installed' });
    const response = await deliver(url, [blobCreated({ blob: 'digits/x.npz' })]);
    expect(response.status).toBe(502);
    expect(response.body.error).toMatch(/installation token .* HTTP 422/);
  });

  it('retries a dropped connection, GitHub 5xx and a secondary rate limit, then succeeds', async () => {
    const url = await endpoint({ [SETTING.token]: pat });
    github.failNext(/dispatches$/, { status: 0, drop: true });
    github.failNext(/dispatches$/, { status: 502, body: { message: 'Server Error' } });
    github.failNext(/dispatches$/, {
      status: 403,
      headers: { 'retry-after': '1' },
      body: {
        message:
          'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
      },
    });
    const before = github.requests.length;
    const response = await deliver(url, [blobCreated({ blob: 'digits/retry.npz', etag: '0x5' })]);
    expect(response.status).toBe(200);
    expect(github.requests.slice(before).map((r) => r.status)).toEqual([0, 502, 403, 204]);
    expect(lines.some((l) => /HTTP 403.*retrying in \d+ ms/.test(l))).toBe(true);
  });

  it('hands a primary rate limit with a distant reset back to Event Grid', async () => {
    const url = await endpoint({ [SETTING.token]: pat });
    const reset = String(Math.floor(Date.now() / 1000) + 900);
    github.failNext(/dispatches$/, {
      status: 403,
      headers: { 'x-ratelimit-remaining': '0', 'x-ratelimit-reset': reset },
      body: { message: 'API rate limit exceeded for user ID 1.' },
    });
    const before = github.dispatches.length;
    const response = await deliver(url, [blobCreated({ blob: 'digits/limited.npz' })]);
    expect(response.status).toBe(503);
    expect(Number(response.headers.get('retry-after'))).toBeGreaterThan(800);
    expect(github.dispatches.length).toBe(before);
  });

  it('mints a new installation token when the cached one was revoked', async () => {
    const url = await endpoint(appAuth());
    await deliver(url, [blobCreated({ blob: 'digits/a.npz', etag: '0xA' })]);
    const first = github.dispatches.at(-1)!.token;
    github.revoke(first);
    const response = await deliver(url, [blobCreated({ blob: 'digits/b.npz', etag: '0xB' })]);
    expect(response.status).toBe(200);
    expect(github.dispatches.at(-1)!.token).not.toBe(first);
  });

  it('refuses events of another storage account, sending nothing to GitHub', async () => {
    const url = await endpoint({ [SETTING.token]: pat });
    const before = github.requests.length;
    const other = ACCOUNT_ID.replace('mlmodels', 'attacker');
    const response = await deliver(url, [
      blobCreated({ blob: 'digits/evil.npz', accountId: other }),
    ]);
    expect(response.status).toBe(403);
    const validation = await deliver(url, [validationEvent(other)], {
      'aeg-event-type': 'SubscriptionValidation',
    });
    expect(validation.status).toBe(403);
    expect(github.requests.length).toBe(before);
  });
});
