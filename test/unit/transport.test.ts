import * as https from 'node:https';
import { Readable } from 'node:stream';
import type { IncomingHttpHeaders } from 'node:http';
import { ConfigurationError } from '../../src/common/errors';
import {
  InsecureTransportError,
  readBody,
  send,
  statusError,
  type HttpResponse,
} from '../../src/common/http';
import { xmlErrorBody } from '../../src/common/http-error';
import { bypassesProxy, isLoopback, proxyFor } from '../../src/common/proxy';
import { MemoryLogger } from '../../src/common/logger';
import { AcrOidcCredentials, PasswordCredentials } from '../../src/build-push/oci/credentials';
import { RegistryClient } from '../../src/build-push/oci/client';
import { closeServer, listenOnLoopback } from '../support/ports';
import { localTls } from '../support/tls';

describe('which proxy a request takes', () => {
  const env = {
    HTTPS_PROXY: 'http://proxy.corp:3128',
    HTTP_PROXY: 'http://plain-proxy.corp:8080',
    NO_PROXY: 'internal.corp, .svc.local,registry.corp:5000',
  };
  const via = (url: string, extra: NodeJS.ProcessEnv = {}) =>
    proxyFor(new URL(url), { ...env, ...extra })?.host;

  it('uses HTTPS_PROXY for https targets and HTTP_PROXY for http ones', () => {
    expect(via('https://acct.blob.core.windows.net/c/b')).toBe('proxy.corp:3128');
    expect(via('http://example.org/')).toBe('plain-proxy.corp:8080');
  });

  it('reads the lower-case variables too, and takes host:port as http://host:port', () => {
    expect(proxyFor(new URL('https://a.example/'), { https_proxy: 'squid:3128' })?.href).toBe(
      'http://squid:3128/',
    );
    expect(proxyFor(new URL('https://a.example/'), {})).toBeUndefined();
  });

  it('prefers the lower-case spelling and skips empty values, as @actions/http-client does', () => {
    const target = new URL('https://a.example/');
    expect(
      proxyFor(target, { https_proxy: 'http://lower:3128', HTTPS_PROXY: 'http://upper:3128' })
        ?.host,
    ).toBe('lower:3128');
    expect(proxyFor(target, { https_proxy: '', HTTPS_PROXY: 'http://upper:3128' })?.host).toBe(
      'upper:3128',
    );
    expect(
      proxyFor(target, { HTTPS_PROXY: 'http://upper:3128', no_proxy: '', NO_PROXY: 'a.example' }),
    ).toBeUndefined();
    expect(
      proxyFor(target, { HTTPS_PROXY: 'http://upper:3128', no_proxy: 'b.example', NO_PROXY: '*' })
        ?.host,
    ).toBe('upper:3128');
  });

  it('goes direct for NO_PROXY hosts, domain suffixes, host:port entries and loopback', () => {
    expect(via('https://internal.corp/x')).toBeUndefined();
    expect(via('https://api.internal.corp/x')).toBeUndefined();
    expect(via('https://a.b.svc.local/x')).toBeUndefined();
    expect(via('https://registry.corp:5000/v2/')).toBeUndefined();
    expect(via('https://registry.corp/v2/')).toBe('proxy.corp:3128');
    expect(via('https://notinternal.corp/x')).toBe('proxy.corp:3128');
    expect(via('https://127.0.0.1:8443/x')).toBeUndefined();
    expect(via('https://localhost/x')).toBeUndefined();
    expect(via('https://[::1]:443/x')).toBeUndefined();
    expect(via('https://anything.example/', { NO_PROXY: '*' })).toBeUndefined();
    expect(
      bypassesProxy(new URL('https://Login.MicrosoftOnline.com/'), 'login.microsoftonline.com'),
    ).toBe(true);
  });

  it('refuses a proxy URL that is not http or https, naming the variable', () => {
    expect(() =>
      proxyFor(new URL('https://a.example/'), { HTTPS_PROXY: 'socks5://proxy:1080' }),
    ).toThrow(/Invalid HTTPS_PROXY 'socks5:\/\/proxy:1080'/);
  });

  it('knows which addresses are loopback', () => {
    expect(isLoopback('127.0.0.2')).toBe(true);
    expect(isLoopback('localhost')).toBe(true);
    expect(isLoopback('10.0.0.1')).toBe(false);
    expect(isLoopback('127.example.com')).toBe(false);
  });
});

describe('credentials never cross the network in the clear', () => {
  it.each([
    ['an Authorization header', { authorization: 'Bearer secret' }, false],
    ['a SAS in the URL', {}, true],
  ])('refuses %s over http to a non-loopback host, before connecting', async (_, headers, sas) => {
    const sending = send({
      method: 'GET',
      url: new URL('http://models.example.invalid/c/model.bin?sig=abc'),
      headers,
      carriesCredential: sas,
    });
    await expect(sending).rejects.toThrow(InsecureTransportError);
    await expect(sending).rejects.toThrow(/over plain http.*Use an https:\/\/ endpoint/);
  });
});

/** Two TLS servers on two loopback addresses: two hosts, as far as the client can tell. */
describe('redirects', () => {
  let first: https.Server;
  let second: https.Server;
  let firstOrigin: string;
  let secondOrigin: string;
  const seen: Array<{ host: string; path: string; headers: IncomingHttpHeaders }> = [];

  beforeAll(async () => {
    const tls = localTls();
    first = https.createServer(tls, (req, res) => {
      seen.push({ host: 'first', path: req.url!, headers: req.headers });
      if (req.url === '/same') res.writeHead(307, { location: '/landed' }).end();
      else if (req.url === '/away')
        res.writeHead(307, { location: `${secondOrigin}/data?sig=x` }).end();
      else if (req.url === '/loop') res.writeHead(302, { location: '/loop' }).end();
      else res.end('first');
    });
    second = https.createServer(tls, (req, res) => {
      seen.push({ host: 'second', path: req.url!, headers: req.headers });
      res.end('second');
    });
    firstOrigin = `https://127.0.0.1:${await listenOnLoopback(first)}`;
    secondOrigin = `https://127.0.0.2:${await listenOnLoopback(second, '127.0.0.2')}`;
  });
  afterAll(async () => {
    await closeServer(first);
    await closeServer(second);
  });
  beforeEach(() => (seen.length = 0));

  const get = (path: string, maxRedirects = 5) =>
    send({
      method: 'GET',
      url: new URL(path, firstOrigin),
      headers: { authorization: 'Bearer registry-token', accept: '*/*' },
      maxRedirects,
    });

  it('drops the Authorization header when a redirect leaves the origin', async () => {
    const response = await get('/away');
    expect((await readBody(response.body)).toString()).toBe('second');
    expect(response.url.origin).toBe(secondOrigin);
    expect(seen.map((request) => request.host)).toEqual(['first', 'second']);
    expect(seen[1].headers.authorization).toBeUndefined();
    expect(seen[1].headers.accept).toBe('*/*');
  });

  it('keeps it on a redirect within the origin', async () => {
    const response = await get('/same');
    expect((await readBody(response.body)).toString()).toBe('first');
    expect(seen[1]).toMatchObject({ host: 'first', path: '/landed' });
    expect(seen[1].headers.authorization).toBe('Bearer registry-token');
  });

  it('returns the redirect itself unless asked to follow, and bounds the hops', async () => {
    const unfollowed = await get('/away', 0);
    expect(unfollowed.status).toBe(307);
    unfollowed.body.resume();
    await expect(get('/loop', 3)).rejects.toThrow(/more than 3 redirects/);
  });
});

describe('status errors', () => {
  it("keep the service's code and message and read Retry-After as an HTTP date", async () => {
    const body =
      '<?xml version="1.0"?><Error><Code>ServerBusy</Code><Message>Slow down.\nRequestId:1</Message></Error>';
    const response = fakeResponse(503, body, {
      'retry-after': new Date(Date.now() + 30_000).toUTCString(),
    });
    const error = await statusError(response, 'GET model.bin', xmlErrorBody);
    expect(error).toMatchObject({ status: 503, code: 'ServerBusy', serviceMessage: 'Slow down.' });
    expect(error.message).toBe('GET model.bin failed: HTTP 503 ServerBusy: Slow down.');
    expect(error.retryAfterMs).toBeGreaterThan(25_000);
  });
});

function fakeResponse(status: number, body: string, headers: Record<string, string>): HttpResponse {
  const stream = Readable.from([Buffer.from(body)]) as unknown as HttpResponse['body'];
  return { status, headers, body: stream, url: new URL('https://x.example/') };
}

describe('registry credentials go only to the registry', () => {
  let registry: https.Server;
  let elsewhere: https.Server;
  let registryHost: string;
  let elsewhereRequests = 0;
  let realm = '';

  beforeAll(async () => {
    const tls = localTls();
    elsewhere = https.createServer(tls, (_req, res) => {
      elsewhereRequests++;
      res.end('{"token":"t"}');
    });
    const elsewherePort = await listenOnLoopback(elsewhere);
    realm = `https://127.0.0.1:${elsewherePort}/oauth2/token`;
    registry = https.createServer(tls, (_req, res) => {
      res
        .writeHead(401, {
          'www-authenticate': `Bearer realm="${realm}",service="registry.test"`,
          'content-type': 'application/json',
        })
        .end('{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}');
    });
    registryHost = `127.0.0.1:${await listenOnLoopback(registry)}`;
  });
  afterAll(async () => {
    await closeServer(registry);
    await closeServer(elsewhere);
  });

  it.each([
    ['a password', () => new PasswordCredentials('ci', 'p4ss', new MemoryLogger())],
    [
      'an Entra token',
      () =>
        new AcrOidcCredentials(
          { get: async () => 'entra-token' },
          '72f988bf-86f1-41af-91ab-2d7cd011db47',
          new MemoryLogger(),
        ),
    ],
  ])('refuses a token realm on another host, with %s, and never contacts it', async (_, make) => {
    const client = new RegistryClient({
      registry: registryHost,
      credentials: make(),
      logger: new MemoryLogger(),
      scopes: ['repository:ai/app:pull'],
    });
    const failure = client.hasBlob('ai/app', `sha256:${'a'.repeat(64)}`);
    await expect(failure).rejects.toThrow(ConfigurationError);
    await expect(failure).rejects.toThrow(
      new RegExp(
        `names the token realm '${realm.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}', which is not on the registry's own host`,
      ),
    );
    expect(elsewhereRequests).toBe(0);
  });

  it('refuses a realm over plain http on a non-loopback registry', async () => {
    const credentials = new PasswordCredentials('ci', 'p4ss', new MemoryLogger());
    await expect(
      credentials.authorization(
        {
          scheme: 'bearer',
          realm: 'http://myacr.azurecr.io/oauth2/token',
          service: 'myacr.azurecr.io',
        },
        ['repository:ai/app:pull'],
        'myacr.azurecr.io',
      ),
    ).rejects.toThrow(InsecureTransportError);
  });
});
