import { Dispatcher } from '../../examples/model-upload-dispatcher/src/dispatcher';
import { LocalDispatcherServer } from '../../examples/model-upload-dispatcher/src/local-server';
import { readSettings, SETTING } from '../../examples/model-upload-dispatcher/src/settings';
import { signJwt, newSigningKey, decodeJwt } from '../servers/jwt';
import { GithubApiServer, type GithubApp } from '../servers/github-api';
import {
  ACCOUNT_ID,
  asCloudEvent,
  blobCreated,
  EventGridEntra,
  OTHER_APP_ID,
  validationEvent,
} from '../support/event-grid';
import { ForwardProxy } from '../support/forward-proxy';

/**
 * The dispatcher served over HTTP (as the Functions host would serve its trigger), driven the
 * way Event Grid drives a webhook with Entra authentication (a bearer token from the Entra
 * double), calling the GitHub API double over HTTP through Octokit.
 */
describe('model-upload dispatcher against the GitHub API and Entra doubles', () => {
  const github = new GithubApiServer();
  const eventGrid = new EventGridEntra();
  let app: GithubApp;
  let pat: string;
  const running: LocalDispatcherServer[] = [];
  const lines: string[] = [];
  const sink = {
    info: (m: string) => lines.push(m),
    warn: (m: string) => lines.push(`warn: ${m}`),
    debug: (m: string) => lines.push(`debug: ${m}`),
  };
  let waits: number[] = [];

  beforeAll(async () => {
    await Promise.all([github.start(), eventGrid.start()]);
    app = github.addApp(['octo-org/ai-app', 'octo-org/other']);
    pat = github.addPersonalToken(['octo-org/ai-app']);
  });
  afterAll(async () => {
    await Promise.all(running.map((server) => server.stop()));
    await Promise.all([github.stop(), eventGrid.stop()]);
    const log = lines.join('\n');
    // Nothing secret reached the function's log in any test.
    for (const token of [...github.issuedTokens, pat]) expect(log).not.toContain(token);
    expect(log).not.toContain('PRIVATE KEY');
    expect(log).not.toMatch(/eyJ[\w-]+\.eyJ/);
  });
  beforeEach(() => (waits = []));

  async function endpoint(
    auth: Record<string, string>,
    extra: Record<string, string> = {},
    options: { now?: () => number } = {},
  ) {
    const settings = readSettings({
      [SETTING.repository]: 'octo-org/ai-app',
      [SETTING.apiUrl]: github.url,
      [SETTING.storageAccountId]: ACCOUNT_ID,
      [SETTING.container]: 'models',
      [SETTING.prefix]: 'digits/',
      ...eventGrid.settings(),
      ...auth,
      ...extra,
    });
    // GitHub's waits take a thousandth of their time here; the budget still counts them whole.
    const dispatcher = new Dispatcher(settings, {
      timeScale: 1,
      onWait: (ms) => waits.push(ms),
      ...options,
    });
    const server = new LocalDispatcherServer(dispatcher, sink);
    running.push(server);
    return server.start();
  }
  const appAuth = () => ({
    [SETTING.appId]: app.appId,
    [SETTING.installationId]: app.installationId,
    [SETTING.privateKey]: app.privateKeyPem,
  });
  const patAuth = () => ({ [SETTING.token]: pat });

  const deliver = async (
    url: string,
    events: unknown,
    headers: Record<string, string> = {},
    token?: string | null,
  ) => {
    const bearer = token === undefined ? await eventGrid.token() : token;
    const response = await fetch(url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        'aeg-event-type': 'Notification',
        ...(bearer ? { authorization: `Bearer ${bearer}` } : {}),
        ...headers,
      },
      body: typeof events === 'string' ? events : JSON.stringify(events),
    });
    const text = await response.text();
    return {
      status: response.status,
      headers: response.headers,
      body: text ? JSON.parse(text) : undefined,
    };
  };
  const etag = (n: number) => `0x8DD${n.toString(16).toUpperCase().padStart(12, '0')}`;

  describe('Event Grid handshakes and deliveries', () => {
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
        blobCreated({ blob: 'digits/v7/digits.npz', etag: etag(1), size: 20806 }),
      ]);
      expect(first.status).toBe(200);
      const second = await deliver(
        url,
        asCloudEvent(blobCreated({ blob: 'digits/v7/labels.txt', etag: `"${etag(2)}"` })),
        { 'content-type': 'application/cloudevents+json' },
      );
      expect(second.status).toBe(200);

      const sent = github.dispatches.slice(before);
      expect(
        sent.map((d) => [d.repository, d.eventType, d.clientPayload.blob, d.clientPayload.etag]),
      ).toEqual([
        ['octo-org/ai-app', 'model-uploaded', 'digits/v7/digits.npz', etag(1)],
        ['octo-org/ai-app', 'model-uploaded', 'digits/v7/labels.txt', etag(2)],
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
      expect(sent[0].headers['user-agent']).toMatch(/^ai-app-model-upload-dispatcher octokit-core/);
    });

    it("answers CloudEvents' OPTIONS abuse protection for Event Grid's origin only", async () => {
      const url = await endpoint(patAuth());
      const options = (origin?: string) =>
        fetch(url, {
          method: 'OPTIONS',
          headers: origin ? { 'WebHook-Request-Origin': origin } : {},
        });
      expect((await options('eventgrid.azure.cn')).headers.get('webhook-allowed-origin')).toBe(
        'eventgrid.azure.cn',
      );
      const evil = await options('evil.example.com');
      expect(evil.status).toBe(403);
      expect(evil.headers.get('webhook-allowed-origin')).toBeNull();
      expect((await options()).status).toBe(400);
    });

    it('refuses what is not a delivery', async () => {
      const url = await endpoint(patAuth());
      expect((await deliver(url, 'not json')).status).toBe(400);
      expect((await deliver(url, [])).status).toBe(400);
      expect((await deliver(url, { eventType: 'x', id: '1', topic: ACCOUNT_ID })).status).toBe(400);
      expect((await deliver(url, [{ id: '1' }])).status).toBe(400);
      expect((await fetch(url, { method: 'GET' })).status).toBe(405);
    });

    it('dispatches only finished blobs in the container under the prefix, each once', async () => {
      const url = await endpoint(patAuth());
      const before = github.dispatches.length;
      const repeated = blobCreated({ blob: 'digits/v1/digits.npz', etag: etag(3) });
      const response = await deliver(url, [
        repeated,
        { ...repeated, id: 'another-id' },
        blobCreated({ blob: 'digits/v1/digits.npz', container: 'scratch' }),
        blobCreated({ blob: 'other/model.bin' }),
        blobCreated({ blob: 'digits/v1/' }),
        blobCreated({ blob: 'digits/v1/labels.txt', api: 'CreateFile', size: 0 }),
        {
          ...blobCreated({ blob: 'digits/v1/old.npz' }),
          eventType: 'Microsoft.Storage.BlobDeleted',
        },
      ]);
      expect(response.status).toBe(200);
      expect(github.dispatches.length - before).toBe(1);
      expect(response.body.dispatched).toEqual([{ blob: 'digits/v1/digits.npz', etag: etag(3) }]);
      expect(response.body.ignored.map((i: { reason: string }) => i.reason)).toEqual([
        'container scratch, not models',
        'blob other/model.bin is outside prefix digits/',
        'blob digits/v1/ is a folder marker',
        'blob digits/v1/labels.txt was only created empty (CreateFile)',
        'event type Microsoft.Storage.BlobDeleted',
      ]);
    });

    it('dispatches nothing for forged eTags and odd blob names', async () => {
      const url = await endpoint(patAuth());
      const before = github.dispatches.length;
      const injected = `${etag(4)}\nmodel-blobs<<EOF\ndigits/evil.npz\nEOF`;
      const response = await deliver(url, [
        blobCreated({ blob: 'digits/a.npz', etag: injected }),
        blobCreated({ blob: 'digits/b.npz', etag: 'W/"0x1"' }),
        blobCreated({ blob: 'digits/c.npz@etag=0x8DC2B1D5E6F7A8B' }),
        blobCreated({ blob: 'digits/d.npz,digits/e.npz' }),
        blobCreated({ blob: 'digits/../labels.txt' }),
      ]);
      expect(response.status).toBe(200);
      expect(response.body.dispatched).toEqual([]);
      expect(response.body.ignored).toHaveLength(5);
      expect(github.dispatches.length).toBe(before);
    });

    it('refuses a whole delivery holding an event from another account, sending nothing', async () => {
      const url = await endpoint(patAuth());
      const before = github.requests.length;
      const other = ACCOUNT_ID.replace('mlmodels', 'attacker');
      const mixed = await deliver(url, [
        blobCreated({ blob: 'digits/ok.npz' }),
        blobCreated({ blob: 'digits/evil.npz', accountId: other }),
      ]);
      expect(mixed.status).toBe(403);
      const validation = await deliver(url, [validationEvent(other)], {
        'aeg-event-type': 'SubscriptionValidation',
      });
      expect(validation.status).toBe(403);
      // ARM ids compare case-insensitively.
      const upper = ACCOUNT_ID.toUpperCase().replace('/SUBSCRIPTIONS', '/subscriptions');
      expect(github.requests.length).toBe(before);
      const ok = await deliver(url, [blobCreated({ blob: 'digits/x.npz', accountId: upper })]);
      expect(ok.status).toBe(200);
    });
  });

  describe('Entra authentication of Event Grid', () => {
    const event = () => [blobCreated({ blob: 'digits/entra.npz', etag: etag(5) })];

    it('refuses a delivery without a token, or with a token not meant for this webhook', async () => {
      const url = await endpoint(patAuth());
      const before = github.requests.length;
      const refused = async (token: string | null) => {
        const response = await deliver(url, event(), {}, token);
        expect(response.status).toBe(401);
        expect(response.headers.get('www-authenticate')).toBe('Bearer');
      };
      await refused(null);
      await refused('not-a-jwt');
      // A real token of the tenant, for another audience (what any app can get for its own API).
      await refused(await eventGrid.token('api://some-other-api'));
      // A token for this audience, but obtained by another app of the tenant, without the role.
      await refused(await eventGrid.token(undefined, OTHER_APP_ID));
      // Claims copied from a valid token, signed with a key Entra never published.
      const claims = decodeJwt(await eventGrid.token());
      await refused(signJwt(claims, newSigningKey()));
      // The same claims with the signature of another token.
      const [header, , signature] = (await eventGrid.token()).split('.');
      const forged = Buffer.from(JSON.stringify({ ...claims, aud: 'api://x' })).toString(
        'base64url',
      );
      await refused(`${header}.${forged}.${signature}`);
      // The validation handshake needs the token too.
      const validation = await deliver(
        url,
        [validationEvent(ACCOUNT_ID)],
        { 'aeg-event-type': 'SubscriptionValidation' },
        null,
      );
      expect(validation.status).toBe(401);
      expect(github.requests.length).toBe(before);
      const log = lines.join('\n');
      expect(log).toMatch(
        /Refused a request without a valid Event Grid token: the token's audience/,
      );
      expect(log).toMatch(
        /not Event Grid's|does not hold the AzureEventGridSecureWebhookSubscriber/,
      );
    });

    it('refuses an expired token', async () => {
      const url = await endpoint(patAuth(), {}, { now: () => Date.now() + 2 * 3600_000 });
      const response = await deliver(url, event());
      expect(response.status).toBe(401);
      expect(lines.at(-1)).toMatch(/the token has expired/);
    });

    it("follows Entra's key rollover, reading the keys again for an unknown key id", async () => {
      let offset = 0;
      const url = await endpoint(patAuth(), {}, { now: () => Date.now() + offset });
      expect((await deliver(url, event())).status).toBe(200);
      const reads = eventGrid.server.keyReads;
      eventGrid.server.rotateSigningKey();
      // Unknown key ids re-read the keys at most once a minute, so forged ids cannot flood Entra.
      expect((await deliver(url, event())).status).toBe(401);
      expect(eventGrid.server.keyReads).toBe(reads);
      offset = 2 * 60_000;
      expect((await deliver(url, event())).status).toBe(200);
      expect(eventGrid.server.keyReads).toBe(reads + 1);
    });

    it("answers 503 when the tenant's keys cannot be read, so Event Grid delivers again", async () => {
      const url = await endpoint(patAuth(), {
        [SETTING.entraAuthorityHost]: 'https://127.0.0.1:1',
      });
      const response = await deliver(url, event());
      expect(response.status).toBe(503);
    });
  });

  describe('GitHub through Octokit', () => {
    it('dispatches with a fine-grained token', async () => {
      const url = await endpoint(patAuth());
      const response = await deliver(url, [blobCreated({ blob: 'digits/pat.npz', etag: etag(6) })]);
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
      const url = await endpoint(patAuth());
      github.failNext(/dispatches$/, { status: 0, drop: true });
      github.failNext(/dispatches$/, { status: 502, body: { message: 'Server Error' } });
      github.failNext(/dispatches$/, {
        status: 403,
        headers: { 'retry-after': '7' },
        body: {
          message:
            'You have exceeded a secondary rate limit. Please wait a few minutes before you try again.',
        },
      });
      const before = github.requests.length;
      const response = await deliver(url, [
        blobCreated({ blob: 'digits/retry.npz', etag: etag(7) }),
      ]);
      expect(response.status).toBe(200);
      expect(github.requests.slice(before).map((r) => r.status)).toEqual([0, 502, 403, 204]);
      expect(waits).toEqual([7000]);
    });

    it('retries 5xx a bounded number of times', async () => {
      const url = await endpoint(patAuth());
      // Exactly as many failures as the dispatcher makes attempts: a sixth would succeed.
      github.failNext(/dispatches$/, { status: 500, body: { message: 'Server Error' } }, 5);
      const before = github.requests.length;
      const response = await deliver(url, [blobCreated({ blob: 'digits/5xx.npz' })]);
      expect(response.status).toBe(503);
      expect(github.requests.length - before).toBe(5);
    });

    it('hands a primary rate limit with a distant reset back to Event Grid', async () => {
      const url = await endpoint(patAuth());
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
      expect(waits).toEqual([]);
    });

    it('gives up within the time Event Grid waits for an answer', async () => {
      const url = await endpoint(patAuth());
      const limited = {
        status: 403,
        headers: { 'retry-after': '20' },
        body: { message: 'You have exceeded a secondary rate limit.' },
      };
      github.failNext(/dispatches$/, limited, 2);
      const before = github.requests.length;
      const response = await deliver(url, [blobCreated({ blob: 'digits/budget.npz' })]);
      // 20 s waited once; a second 20 s would pass Event Grid's 30 s and cause a redelivery.
      expect(waits).toEqual([20_000]);
      expect(response.status).toBe(503);
      expect(Number(response.headers.get('retry-after'))).toBe(20);
      expect(github.requests.length - before).toBe(2);
    });

    it('hands a secondary rate limit without Retry-After (a minute) back to Event Grid', async () => {
      const url = await endpoint(patAuth());
      github.failNext(/dispatches$/, {
        status: 403,
        body: { message: 'You have exceeded a secondary rate limit.' },
      });
      const response = await deliver(url, [blobCreated({ blob: 'digits/60.npz' })]);
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('60');
      expect(waits).toEqual([]);
    });

    it('mints a new installation token when the cached one was revoked', async () => {
      const url = await endpoint(appAuth());
      await deliver(url, [blobCreated({ blob: 'digits/a.npz', etag: etag(8) })]);
      const first = github.dispatches.at(-1)!.token;
      github.revoke(first);
      const response = await deliver(url, [blobCreated({ blob: 'digits/b.npz', etag: etag(9) })]);
      expect(response.status).toBe(200);
      expect(github.dispatches.at(-1)!.token).not.toBe(first);
      expect(github.issuedTokens).toContain(github.dispatches.at(-1)!.token);
    });

    it('keeps tokens out of the log even when GitHub echoes them', async () => {
      const url = await endpoint(appAuth());
      await deliver(url, [blobCreated({ blob: 'digits/1.npz', etag: etag(10) })]);
      const installationToken = github.dispatches.at(-1)!.token;
      github.failNext(/dispatches$/, {
        status: 422,
        body: { message: `Invalid request with ${installationToken}` },
      });
      const response = await deliver(url, [blobCreated({ blob: 'digits/2.npz' })]);
      expect(response.status).toBe(502);
      const patUrl = await endpoint(patAuth());
      github.failNext(/dispatches$/, {
        status: 422,
        body: { message: `Invalid request with ${pat}` },
      });
      await deliver(patUrl, [blobCreated({ blob: 'digits/3.npz' })]);
      const log = lines.join('\n');
      expect(log).toMatch(/Invalid request with \*\*\*/);
      expect(log).not.toContain(installationToken);
      expect(log).not.toContain(pat);
    });
  });

  describe('behind a forward proxy (tinyproxy)', () => {
    const proxy = new ForwardProxy();
    const saved = { ...process.env };
    beforeAll(() => proxy.start());
    afterAll(async () => {
      for (const name of ['HTTPS_PROXY', 'HTTP_PROXY', 'NO_PROXY']) {
        if (saved[name] === undefined) delete process.env[name];
        else process.env[name] = saved[name];
      }
      await proxy.stop();
    });

    it('sends GitHub and Entra requests through HTTP(S)_PROXY, and NO_PROXY hosts directly', async () => {
      process.env.HTTPS_PROXY = proxy.url;
      process.env.HTTP_PROXY = proxy.url;
      const entraHost = new URL(eventGrid.server.authorityHost).host;
      process.env.NO_PROXY = '';
      const proxied = await endpoint(appAuth());
      expect(
        (await deliver(proxied, [blobCreated({ blob: 'digits/p.npz', etag: etag(11) })])).status,
      ).toBe(200);
      const githubHost = new URL(github.url).host;
      // undici tunnels every request through CONNECT, plain http ones too.
      expect(proxy.requests()).toEqual(
        expect.arrayContaining([`CONNECT ${githubHost} HTTP/1.1`, `CONNECT ${entraHost} HTTP/1.1`]),
      );

      const seen = proxy.requests().length;
      process.env.NO_PROXY = `${entraHost},${githubHost}`;
      const direct = await endpoint(appAuth());
      expect(
        (await deliver(direct, [blobCreated({ blob: 'digits/d.npz', etag: etag(12) })])).status,
      ).toBe(200);
      expect(proxy.requests().length).toBe(seen);
    });
  });
});
