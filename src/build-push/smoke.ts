import { randomBytes } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { errorMessage } from '../common/errors';
import type { Logger } from '../common/logger';
import { sleep } from '../common/retry';
import type { DockerCli } from './docker';

export interface SmokeSettings {
  /** Container port the app listens on; the test is off without one. */
  port: number;
  /** Path polled until it answers 2xx. */
  path: string;
  timeoutMs: number;
  /** File whose contents are POSTed as JSON to `requestPath`. */
  requestFile?: string;
  requestPath: string;
  /** A string the POST's response must contain. */
  expect?: string;
}

export interface SmokeResult {
  passed: boolean;
  /** Why it failed, one line. */
  reason?: string;
  milliseconds: number;
  /** The POST's response, shortened. */
  response?: string;
}

/**
 * Runs the image, waits for its health path, POSTs the sample request and checks the answer.
 * The container's log is printed when anything fails, and the container is always removed.
 */
export async function smokeTest(
  docker: DockerCli,
  image: string,
  settings: SmokeSettings,
  logger: Logger,
): Promise<SmokeResult> {
  const started = Date.now();
  const name = `build-push-smoke-${randomBytes(4).toString('hex')}`;
  const body = settings.requestFile ? await readFile(settings.requestFile) : undefined;
  await docker.run([
    'run',
    '--detach',
    '--name',
    name,
    '--publish',
    `127.0.0.1::${settings.port}`,
    image,
  ]);
  try {
    const mapping = (await docker.run(['port', name, `${settings.port}/tcp`])).stdout
      .trim()
      .split('\n')[0];
    const hostPort = mapping.slice(mapping.lastIndexOf(':') + 1);
    const base = `http://127.0.0.1:${hostPort}`;
    logger.info(`container ${name} started; waiting for ${settings.path} on port ${settings.port}`);
    const health = await waitForHealth(
      docker,
      name,
      `${base}${settings.path}`,
      settings.timeoutMs,
      started,
    );
    if (health) return await fail(health);
    logger.info(`${settings.path} answered after ${Date.now() - started} ms`);
    let response: string | undefined;
    if (body) {
      const answer = await fetch(`${base}${settings.requestPath}`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body,
        signal: AbortSignal.timeout(Math.max(5_000, settings.timeoutMs)),
      }).catch((error: unknown) => errorMessage(error));
      if (typeof answer === 'string')
        return await fail(`POST ${settings.requestPath} failed: ${answer}`);
      response = (await answer.text()).slice(0, 2000);
      logger.info(
        `POST ${settings.requestPath} → HTTP ${answer.status}: ${response.slice(0, 300).trim()}`,
      );
      if (!answer.ok)
        return await fail(`POST ${settings.requestPath} answered HTTP ${answer.status}`, response);
      if (settings.expect !== undefined && !response.includes(settings.expect)) {
        return await fail(
          `the response to POST ${settings.requestPath} does not contain '${settings.expect}'`,
          response,
        );
      }
    }
    return { passed: true, milliseconds: Date.now() - started, response };
  } catch (error) {
    return await fail(errorMessage(error));
  } finally {
    await docker.run(['rm', '--force', '--volumes', name], { check: false });
  }

  async function fail(reason: string, response?: string): Promise<SmokeResult> {
    await logger.group(`Container log of ${name} (smoke test failed)`, async () => {
      const logs = await docker.run(['logs', '--tail', '200', name], { check: false });
      for (const line of `${logs.stdout}${logs.stderr}`.split('\n')) logger.info(line);
    });
    return { passed: false, reason, milliseconds: Date.now() - started, response };
  }
}

/** Polls the health URL; answers why it gave up, or undefined once it answered 2xx. */
async function waitForHealth(
  docker: DockerCli,
  name: string,
  url: string,
  timeoutMs: number,
  started: number,
): Promise<string | undefined> {
  let last = 'no answer';
  while (Date.now() - started < timeoutMs) {
    try {
      const answer = await fetch(url, { signal: AbortSignal.timeout(5_000) });
      await answer.arrayBuffer();
      if (answer.ok) return undefined;
      last = `HTTP ${answer.status}`;
    } catch (error) {
      last = errorMessage(error);
    }
    const state = await docker.run(
      ['inspect', '--format', '{{.State.Running}} {{.State.ExitCode}}', name],
      { check: false },
    );
    const [running, exitCode] = state.stdout.trim().split(' ');
    if (running === 'false')
      return `the container exited with code ${exitCode} before ${new URL(url).pathname} answered`;
    await sleep(250);
  }
  return `${new URL(url).pathname} did not answer 2xx within ${Math.round(timeoutMs / 1000)} s (last: ${last})`;
}
