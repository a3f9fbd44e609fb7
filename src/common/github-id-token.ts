import * as core from '@actions/core';
import { errorMessage } from './errors';
import { unreachable } from './proxy';

/**
 * The job's GitHub OIDC token for an audience (core.getIDToken), with a failure said on one line
 * that names the endpoint. The toolkit's own message spreads over lines ("Failed to get ID
 * Token. / Error Code : ... / Error Message: ..."), of which an error line keeps only the first,
 * dropping the cause; when no answer came at all (a proxy that refused to tunnel, a host that
 * does not resolve), it also says what to check.
 */
export async function githubIdToken(
  audience: string,
  env: NodeJS.ProcessEnv = process.env,
  timeoutMs = ID_TOKEN_TIMEOUT_MS,
): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  // The toolkit's client sets no timeout: an endpoint that accepts and never answers would
  // hold the job until its own timeout-minutes.
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`Error Code : undefined Error Message: waited ${timeoutMs / 1000} s`)),
      timeoutMs,
    );
  });
  try {
    return await Promise.race([core.getIDToken(audience), timeout]);
  } catch (error) {
    const detail = errorMessage(error)
      .replace(/\s+/g, ' ')
      .replace(/^Error message: /, '')
      .trim();
    let origin = 'ACTIONS_ID_TOKEN_REQUEST_URL';
    try {
      origin = new URL(env.ACTIONS_ID_TOKEN_REQUEST_URL ?? '').origin;
    } catch {
      // Not a URL: the toolkit's message says so.
    }
    const cause = /Error Message: (.*)$/.exec(detail)?.[1]?.trim();
    if (cause && /Error Code : undefined/.test(detail)) {
      throw new Error(`Could not get a GitHub OIDC token: ${unreachable(origin, cause)}`);
    }
    throw new Error(`Could not get a GitHub OIDC token from ${origin}: ${detail}`);
  } finally {
    clearTimeout(timer);
  }
}

/** How long the job waits for GitHub's OIDC token endpoint. */
const ID_TOKEN_TIMEOUT_MS = 30_000;
