import * as http from 'node:http';
import { githubIdToken } from '../../src/common/github-id-token';
import { closeServer, freePort, listenOnLoopback } from '../support/ports';

describe('githubIdToken', () => {
  const saved = {
    url: process.env.ACTIONS_ID_TOKEN_REQUEST_URL,
    token: process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN,
  };
  let refusing: http.Server;
  let refusingPort: number;
  let silent: http.Server;
  let silentPort: number;

  beforeAll(async () => {
    refusing = http.createServer((_req, res) => {
      res.writeHead(401, { 'content-type': 'application/json' });
      res.end('{"message":"Bad credentials"}');
    });
    refusingPort = await listenOnLoopback(refusing);
    // Accepts the request and never answers.
    silent = http.createServer(() => undefined);
    silentPort = await listenOnLoopback(silent);
    process.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN = 'request-token';
  });
  afterAll(async () => {
    for (const [name, value] of [
      ['ACTIONS_ID_TOKEN_REQUEST_URL', saved.url],
      ['ACTIONS_ID_TOKEN_REQUEST_TOKEN', saved.token],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    silent.closeAllConnections();
    await closeServer(refusing);
    await closeServer(silent);
  });
  const at = (port: number) =>
    (process.env.ACTIONS_ID_TOKEN_REQUEST_URL = `http://127.0.0.1:${port}/_apis/actionstoken?api-version=2.0`);

  it('says on one line which endpoint gave no answer and why, and what to check', async () => {
    const port = await freePort();
    at(port);
    await expect(githubIdToken('api://AzureADTokenExchange')).rejects.toThrow(
      `Could not get a GitHub OIDC token: http://127.0.0.1:${port} did not answer (connect ` +
        `ECONNREFUSED 127.0.0.1:${port}). Check that this runner reaches it, directly or through ` +
        `the proxy HTTP_PROXY names (hosts in NO_PROXY go direct).`,
    );
  });

  it("keeps the endpoint's own answer when there was one", async () => {
    at(refusingPort);
    const failure = githubIdToken('api://AzureADTokenExchange');
    await expect(failure).rejects.toThrow(
      new RegExp(
        `^Could not get a GitHub OIDC token from http://127\\.0\\.0\\.1:${refusingPort}: ` +
          `Failed to get ID Token\\. Error Code : 401 Error Message: .*Bad credentials`,
      ),
    );
    await expect(failure).rejects.not.toThrow(/\n/);
  });

  it('gives up on an endpoint that never answers, saying how long it waited', async () => {
    at(silentPort);
    await expect(githubIdToken('api://AzureADTokenExchange', process.env, 300)).rejects.toThrow(
      `Could not get a GitHub OIDC token: http://127.0.0.1:${silentPort} did not answer ` +
        `(waited 0.3 s).`,
    );
  });
});
