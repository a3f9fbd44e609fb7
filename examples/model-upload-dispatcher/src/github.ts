import { sign } from 'node:crypto';
import { errorMessage } from '../../../src/common/errors';
import type { Logger } from '../../../src/common/logger';
import { HttpError, parseRetryAfter } from '../../../src/common/http-error';
import { isTransient, sleep, withRetry } from '../../../src/common/retry';
import type { ModelUploadedPayload } from './filter';
import type { DispatcherSettings, GitHubAuth } from './settings';

/** One request to the GitHub REST API and its answer, body read whole (they are small). */
export interface GitHubRequest {
  method: 'POST';
  url: URL;
  headers: Record<string, string>;
  body: string;
}
export interface GitHubResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}
export type Transport = (request: GitHubRequest) => Promise<GitHubResponse>;

/** A GitHub request that has not answered in this long fails (and is retried). */
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * Event Grid waits 30 seconds for the webhook's answer and then redelivers, so retrying past
 * this would dispatch twice: what does not succeed within it is handed back to Event Grid.
 */
export const DELIVERY_BUDGET_MS = 25_000;

/** Sends with Node's fetch; what production and the integration tests use. */
export const httpTransport: Transport = async (request) => {
  let response: Response;
  try {
    response = await fetch(request.url, {
      method: request.method,
      headers: request.headers,
      body: request.body,
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
    });
  } catch (error) {
    throw networkError(request.url, error);
  }
  const headers: GitHubResponse['headers'] = {};
  response.headers.forEach((value, name) => (headers[name] = value));
  return { status: response.status, headers, body: await response.text() };
};

/**
 * fetch's "fetch failed" hides the reason in `cause`; surface its message and code, so the log
 * says what happened and isTransient recognises dropped connections and timeouts.
 */
function networkError(url: URL, error: unknown): NodeJS.ErrnoException {
  const cause = (error as { cause?: NodeJS.ErrnoException }).cause;
  const timedOut = (error as Error).name === 'TimeoutError';
  const wrapped: NodeJS.ErrnoException = new Error(
    `${url.origin}: ${timedOut ? `no answer in ${REQUEST_TIMEOUT_MS} ms; timed out` : (cause?.message ?? errorMessage(error))}`,
  );
  wrapped.code = timedOut ? 'ETIMEDOUT' : cause?.code;
  return wrapped;
}

const API_VERSION = '2022-11-28';
const USER_AGENT = 'ai-app-model-upload-dispatcher';
/** GitHub asks for at least a minute's pause after a secondary rate limit without Retry-After. */
const SECONDARY_LIMIT_PAUSE_MS = 60_000;
/** Installation tokens live an hour; one is renewed when less than this is left. */
const TOKEN_RENEW_MARGIN_MS = 5 * 60_000;

const header = (response: GitHubResponse, name: string): string | undefined => {
  const value = response.headers[name];
  return Array.isArray(value) ? value[0] : value;
};

/**
 * The wait a rate-limited answer asks for, or undefined when it is not a rate limit. GitHub
 * signals a secondary rate limit with 403 or 429 and Retry-After, a primary one with
 * x-ratelimit-remaining: 0 and x-ratelimit-reset (epoch seconds); a 403 without either is a
 * permission problem and must not be retried.
 */
export function rateLimitWait(response: GitHubResponse, now = Date.now()): number | undefined {
  if (response.status !== 403 && response.status !== 429) return undefined;
  const retryAfter = parseRetryAfter(header(response, 'retry-after'), now);
  if (retryAfter !== undefined) return retryAfter;
  if (header(response, 'x-ratelimit-remaining') === '0') {
    const reset = Number(header(response, 'x-ratelimit-reset'));
    if (Number.isFinite(reset)) return Math.max(0, reset * 1000 - now);
  }
  if (response.status === 429 || /secondary rate limit/i.test(response.body)) {
    return SECONDARY_LIMIT_PAUSE_MS;
  }
  return undefined;
}

/** A GitHub answer the dispatcher did not want; `rateLimitWaitMs` set when it was a rate limit. */
export class GitHubError extends HttpError {
  constructor(
    message: string,
    status: number,
    readonly rateLimitWaitMs?: number,
  ) {
    super(message, status, undefined, rateLimitWaitMs);
    this.name = 'GitHubError';
  }
}

function gitHubError(what: string, response: GitHubResponse): GitHubError {
  let detail = '';
  try {
    const parsed = JSON.parse(response.body) as { message?: unknown };
    if (typeof parsed.message === 'string') detail = `: ${parsed.message}`;
  } catch {
    // Not JSON (a proxy's HTML page, say): the status says enough.
  }
  return new GitHubError(
    `${what} failed: HTTP ${response.status}${detail}`,
    response.status,
    rateLimitWait(response),
  );
}

/** The RS256 JWT a GitHub App signs to act as itself (at most 10 minutes long). */
export function appJwt(auth: Extract<GitHubAuth, { kind: 'app' }>, now = Date.now()): string {
  const seconds = Math.floor(now / 1000);
  const encode = (value: object) => Buffer.from(JSON.stringify(value)).toString('base64url');
  // iat a minute back tolerates clock drift between this host and GitHub.
  const unsigned = `${encode({ alg: 'RS256', typ: 'JWT' })}.${encode({
    iat: seconds - 60,
    exp: seconds + 9 * 60,
    iss: auth.appId,
  })}`;
  const signature = sign('sha256', Buffer.from(unsigned), auth.privateKey).toString('base64url');
  return `${unsigned}.${signature}`;
}

export interface GitHubClientOptions {
  transport?: Transport;
  wait?: (ms: number) => Promise<void>;
  now?: () => number;
}

/** Sends repository_dispatch, signing in with an installation token or a fine-grained token. */
export class GitHubClient {
  private readonly transport: Transport;
  private readonly wait: (ms: number) => Promise<void>;
  private readonly now: () => number;
  private installationToken?: { token: string; expiresAt: number };

  constructor(
    private readonly settings: DispatcherSettings,
    options: GitHubClientOptions = {},
  ) {
    this.transport = options.transport ?? httpTransport;
    this.wait = options.wait ?? sleep;
    this.now = options.now ?? Date.now;
  }

  /**
   * POST /repos/{owner}/{repo}/dispatches; resolves once GitHub accepted it (204). The logger
   * is the caller's (one per invocation); the installation token outlives it, cached here.
   */
  async dispatch(payload: ModelUploadedPayload, logger: Logger): Promise<void> {
    if (this.settings.auth.kind === 'token') logger.mask(this.settings.auth.token);
    const { owner, repo } = this.settings.repository;
    const body = JSON.stringify({ event_type: this.settings.eventType, client_payload: payload });
    const what = `repository_dispatch to ${owner}/${repo}`;
    await this.withRetry(what, logger, async () => {
      const token = await this.token(logger);
      const response = await this.transport({
        method: 'POST',
        url: this.endpoint(`/repos/${owner}/${repo}/dispatches`),
        headers: this.headers(`Bearer ${token}`, body),
        body,
      });
      if (response.status === 204 || response.status === 200) return;
      if (response.status === 401 && this.settings.auth.kind === 'app') {
        // A revoked or expired installation token: the next attempt mints a new one.
        this.installationToken = undefined;
      }
      throw gitHubError(what, response);
    });
  }

  private async token(logger: Logger): Promise<string> {
    const auth = this.settings.auth;
    if (auth.kind === 'token') return auth.token;
    const cached = this.installationToken;
    if (cached && cached.expiresAt - this.now() > TOKEN_RENEW_MARGIN_MS) {
      logger.mask(cached.token);
      return cached.token;
    }

    const jwt = appJwt(auth, this.now());
    logger.mask(jwt);
    // Ask for the least the dispatch needs: this one repository, Contents: write.
    const body = JSON.stringify({
      repositories: [this.settings.repository.repo],
      permissions: { contents: 'write' },
    });
    const what = `installation token for app ${auth.appId} (installation ${auth.installationId})`;
    const response = await this.transport({
      method: 'POST',
      url: this.endpoint(`/app/installations/${auth.installationId}/access_tokens`),
      headers: this.headers(`Bearer ${jwt}`, body),
      body,
    });
    if (response.status !== 201) throw gitHubError(what, response);
    const issued = JSON.parse(response.body) as { token?: unknown; expires_at?: unknown };
    if (typeof issued.token !== 'string' || !issued.token) {
      throw new Error(`${what}: the answer carries no token`);
    }
    logger.mask(issued.token);
    const expiresAt = Date.parse(String(issued.expires_at));
    this.installationToken = {
      token: issued.token,
      expiresAt: Number.isNaN(expiresAt) ? this.now() + 55 * 60_000 : expiresAt,
    };
    logger.info(`Signed in as GitHub App ${auth.appId}, installation ${auth.installationId}`);
    return issued.token;
  }

  /** Retries 5xx, dropped connections, rate limits (when the wait fits) and one 401. */
  private async withRetry(
    what: string,
    logger: Logger,
    operation: () => Promise<void>,
  ): Promise<void> {
    let unauthorizedRetried = false;
    const start = this.now();
    const fitsBudget = (waitMs: number) => this.now() - start + waitMs <= DELIVERY_BUDGET_MS;
    await withRetry(operation, {
      description: what,
      logger,
      wait: this.wait,
      policy: {
        maxAttempts: this.settings.maxAttempts,
        baseDelayMs: 500,
        maxDelayMs: 4_000,
        maxRetryAfterMs: this.settings.maxWaitMs,
      },
      retryable: (error) => {
        if (error instanceof GitHubError && error.rateLimitWaitMs !== undefined) {
          return (
            error.rateLimitWaitMs <= this.settings.maxWaitMs && fitsBudget(error.rateLimitWaitMs)
          );
        }
        if (!fitsBudget(0)) return false;
        if (error instanceof GitHubError) {
          if (error.status === 401 && this.settings.auth.kind === 'app' && !unauthorizedRetried) {
            unauthorizedRetried = true;
            return true;
          }
          return error.status >= 500 || error.status === 408;
        }
        return isTransient(error);
      },
    });
  }

  private endpoint(path: string): URL {
    const base = this.settings.apiUrl.toString().replace(/\/+$/, '');
    return new URL(`${base}${path}`);
  }

  private headers(authorization: string, body: string): Record<string, string> {
    return {
      accept: 'application/vnd.github+json',
      'x-github-api-version': API_VERSION,
      'user-agent': USER_AGENT,
      authorization,
      'content-type': 'application/json',
      'content-length': String(Buffer.byteLength(body)),
    };
  }
}
