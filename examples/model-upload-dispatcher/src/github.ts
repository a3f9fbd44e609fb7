import { createAppAuth } from '@octokit/auth-app';
import { Octokit } from '@octokit/core';
import { retry } from '@octokit/plugin-retry';
import { throttling } from '@octokit/plugin-throttling';
import { EnvHttpProxyAgent, fetch as undiciFetch, type Dispatcher as HttpDispatcher } from 'undici';
import { errorMessage } from '../../../src/common/errors';
import type { Logger } from '../../../src/common/logger';
import { HttpError, parseRetryAfter } from '../../../src/common/http-error';
import type { ModelUploadedPayload } from './filter';
import type { DispatcherSettings } from './settings';

/** A GitHub request that has not answered in this long fails (and is retried). */
const REQUEST_TIMEOUT_MS = 10_000;
/**
 * Event Grid waits 30 seconds for the webhook's answer and then redelivers, so no attempt
 * starts or runs past this: what GitHub has not accepted by then is handed back to Event Grid.
 * The retry plugin's last pause (at most RETRY_BASE_MS * 4², 4 s) may follow, so the answer
 * leaves within 29 s.
 */
export const DELIVERY_BUDGET_MS = 25_000;
/** The retry plugin pauses (retry number)² times this between attempts: 0.25, 1, 2.25, 4 s. */
const RETRY_BASE_MS = 250;
/** Installation tokens live an hour; one is renewed when less than this is left. */
const TOKEN_RENEW_MARGIN_MS = 5 * 60_000;
/** GitHub asks for at least a minute's pause after a secondary rate limit without Retry-After. */
const SECONDARY_LIMIT_PAUSE_MS = 60_000;
const USER_AGENT = 'ai-app-model-upload-dispatcher';
/** The REST API version the requests are written against. */
const API_VERSION_HEADERS = { 'x-github-api-version': '2022-11-28' };

/** What a rate-limited or failed answer looked like, for `rateLimitWait`. */
export interface GitHubAnswer {
  status: number;
  headers: Record<string, string | number | string[] | undefined>;
  body: string;
}

const header = (answer: GitHubAnswer, name: string): string | undefined => {
  const value = answer.headers[name];
  return Array.isArray(value) ? value[0] : value === undefined ? undefined : String(value);
};

/**
 * The wait a rate-limited answer asks for, or undefined when it is not a rate limit. GitHub
 * signals a secondary rate limit with 403 or 429 and Retry-After, a primary one with
 * x-ratelimit-remaining: 0 and x-ratelimit-reset (epoch seconds); a 403 without either is a
 * permission problem and must not be retried.
 */
export function rateLimitWait(answer: GitHubAnswer, now = Date.now()): number | undefined {
  if (answer.status !== 403 && answer.status !== 429) return undefined;
  const retryAfter = parseRetryAfter(header(answer, 'retry-after'), now);
  if (retryAfter !== undefined) return retryAfter;
  if (header(answer, 'x-ratelimit-remaining') === '0') {
    const reset = Number(header(answer, 'x-ratelimit-reset'));
    if (Number.isFinite(reset)) return Math.max(0, reset * 1000 - now);
  }
  if (answer.status === 429 || /secondary rate limit/i.test(answer.body)) {
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

/** The parts of Octokit's RequestError the dispatcher reads. */
interface OctokitFailure {
  status?: number;
  message: string;
  response?: { status: number; headers: GitHubAnswer['headers']; data?: unknown };
}

function gitHubError(what: string, error: unknown): Error {
  const failure = error as OctokitFailure;
  if (!failure.response || typeof failure.status !== 'number' || failure.status < 400) {
    // No answer at all (dropped connection, timeout, the delivery's time ran out).
    const cause = (error as { cause?: unknown }).cause;
    return new Error(`${what} failed: ${errorMessage(cause ?? error)}`);
  }
  const data = failure.response.data;
  const body = typeof data === 'string' ? data : JSON.stringify(data ?? '');
  const message =
    typeof data === 'object' &&
    data !== null &&
    typeof (data as { message?: unknown }).message === 'string'
      ? `: ${(data as { message: string }).message}`
      : '';
  return new GitHubError(
    `${what} failed: HTTP ${failure.status}${message}`,
    failure.status,
    rateLimitWait({ status: failure.status, headers: failure.response.headers, body }),
  );
}

/**
 * The time one delivery has spent, in GitHub's seconds: waits GitHub asked for count at their
 * full length even when tests shorten them (`timeScale`), so the budget decisions are the ones
 * production makes.
 */
class DeliveryClock {
  private readonly start = Date.now();
  private grantedMs = 0;

  constructor(
    private readonly settings: DispatcherSettings,
    private readonly timeScale: number,
    private readonly onWait: (ms: number) => void,
  ) {}

  elapsed(): number {
    return Date.now() - this.start + this.grantedMs * (1 - this.timeScale / 1000);
  }

  remaining(): number {
    return DELIVERY_BUDGET_MS - this.elapsed();
  }

  /** Whether a rate-limit pause of `seconds` is waited out: short enough, and time left after it. */
  grant(seconds: number): boolean {
    const ms = seconds * 1000;
    if (ms > this.settings.maxWaitMs || this.elapsed() + ms >= DELIVERY_BUDGET_MS) return false;
    this.grantedMs += ms;
    this.onWait(ms);
    return true;
  }
}

/** The Node fetch of the `undici` package, as Octokit calls it. */
type Fetch = (input: string | URL, init?: Record<string, unknown>) => Promise<unknown>;

/**
 * fetch through the proxy the environment names (HTTPS_PROXY/HTTP_PROXY, NO_PROXY, upper or
 * lower case), each attempt bounded by REQUEST_TIMEOUT_MS and by the delivery's budget. A
 * timed-out attempt fails as a network error (which the retry plugin retries); an attempt with
 * no budget left fails as an AbortError, which Octokit's plugins never retry.
 */
function boundedFetch(agent: HttpDispatcher, clock: DeliveryClock): Fetch {
  return async (input, init = {}) => {
    const remaining = clock.remaining();
    if (remaining <= 0) {
      throw new DOMException(
        `no time left in the ${DELIVERY_BUDGET_MS / 1000} s Event Grid gives a delivery`,
        'AbortError',
      );
    }
    const signals = [AbortSignal.timeout(Math.min(REQUEST_TIMEOUT_MS, remaining))];
    if (init.signal) signals.push(init.signal as AbortSignal);
    return undiciFetch(input, {
      ...(init as object),
      dispatcher: agent,
      signal: AbortSignal.any(signals),
    } as never);
  };
}

/** Per-request options that carry the delivery's clock to the throttling callbacks. */
interface ClockedRequest {
  clock?: DeliveryClock;
}

const ThrottledOctokit = Octokit.plugin(retry, throttling);

export interface GitHubClientOptions {
  /**
   * Milliseconds per second of a wait GitHub asks for (1000); tests shrink it so a 20 s
   * Retry-After takes 20 ms while the budget still counts 20 s.
   */
  timeScale?: number;
  /** Called with each rate-limit wait that is granted, in GitHub's milliseconds. */
  onWait?: (ms: number) => void;
  /** The HTTP agent; by default one that honours the proxy variables. */
  agent?: HttpDispatcher;
}

/**
 * Sends repository_dispatch with Octokit: a GitHub App's installation token (through
 * @octokit/auth-app, narrowed to the repository and Contents: write, cached and renewed) or a
 * fine-grained token; @octokit/plugin-retry retries dropped connections and 5xx;
 * @octokit/plugin-throttling waits out a rate limit only when it fits the delivery's budget.
 */
export class GitHubClient {
  private readonly octokit: InstanceType<typeof ThrottledOctokit>;
  private readonly agent: HttpDispatcher;
  private readonly timeScale: number;
  private readonly onWait: (ms: number) => void;
  /** auth-app's token cache, kept across deliveries (one client per worker process). */
  private readonly tokenCache = new Map<string, string>();
  private tokenExpiresAt = 0;

  constructor(
    private readonly settings: DispatcherSettings,
    options: GitHubClientOptions = {},
  ) {
    this.agent = options.agent ?? new EnvHttpProxyAgent();
    this.timeScale = options.timeScale ?? 1000;
    this.onWait = options.onWait ?? (() => undefined);
    const rateLimited = (seconds: number, request: { request?: object }) =>
      (request.request as ClockedRequest | undefined)?.clock?.grant(seconds) ?? false;
    this.octokit = new ThrottledOctokit({
      baseUrl: settings.apiUrl.toString().replace(/\/+$/, ''),
      userAgent: USER_AGENT,
      // Octokit's own console logging stays off: the invocation's logger says what happened.
      log: {
        debug: () => undefined,
        info: () => undefined,
        warn: () => undefined,
        error: () => undefined,
      },
      retry: {
        retries: settings.maxAttempts - 1,
        retryAfterBaseValue: (RETRY_BASE_MS * this.timeScale) / 1000,
      },
      throttle: {
        retryAfterBaseValue: this.timeScale,
        onRateLimit: rateLimited,
        onSecondaryRateLimit: rateLimited,
      },
    });
  }

  /**
   * POST /repos/{owner}/{repo}/dispatches; resolves once GitHub accepted it (204). The logger
   * is the caller's (one per invocation); the installation token outlives it, cached here.
   */
  async dispatch(payload: ModelUploadedPayload, logger: Logger): Promise<void> {
    const clock = new DeliveryClock(this.settings, this.timeScale, this.onWait);
    const request = { fetch: boundedFetch(this.agent, clock), clock };
    const { owner, repo } = this.settings.repository;
    const what = `repository_dispatch to ${owner}/${repo}`;
    const send = async () => {
      const token = await this.token(logger, request);
      await this.octokit.request('POST /repos/{owner}/{repo}/dispatches', {
        owner,
        repo,
        event_type: this.settings.eventType,
        client_payload: payload as unknown as Record<string, unknown>,
        headers: { ...API_VERSION_HEADERS, authorization: `token ${token}` },
        request,
      });
    };
    const failure = (error: unknown) =>
      error instanceof GitHubError ? error : gitHubError(what, error);
    try {
      await send();
    } catch (error) {
      const fromDispatch = !(error instanceof GitHubError);
      const status = (error as OctokitFailure).status;
      if (
        fromDispatch &&
        status === 401 &&
        this.settings.auth.kind === 'app' &&
        clock.remaining() > 0
      ) {
        // A revoked or expired installation token: mint a new one, once.
        logger.info('GitHub refused the cached installation token (401); minting a new one');
        this.tokenCache.clear();
        this.tokenExpiresAt = 0;
        try {
          return await send();
        } catch (again) {
          throw failure(again);
        }
      }
      throw failure(error);
    }
  }

  private async token(
    logger: Logger,
    request: { fetch: Fetch; clock: DeliveryClock },
  ): Promise<string> {
    const auth = this.settings.auth;
    if (auth.kind === 'token') {
      logger.mask(auth.token);
      return auth.token;
    }
    const refresh = this.tokenExpiresAt - Date.now() < TOKEN_RENEW_MARGIN_MS;
    const appAuth = createAppAuth({
      appId: auth.appId,
      privateKey: auth.privateKeyPem,
      installationId: auth.installationId,
      cache: {
        get: (key: string) => this.tokenCache.get(key) ?? '',
        set: (key: string, value: string) => void this.tokenCache.set(key, value),
      },
      log: { warn: (message: string) => logger.warning(message) },
      request: this.octokit.request.defaults({ request, headers: API_VERSION_HEADERS }),
    });
    let issued;
    try {
      // The least the dispatch needs: this one repository, Contents: write.
      issued = await appAuth({
        type: 'installation',
        repositoryNames: [this.settings.repository.repo],
        permissions: { contents: 'write' },
        refresh,
      });
    } catch (error) {
      throw gitHubError(
        `installation token for app ${auth.appId} (installation ${auth.installationId})`,
        error,
      );
    }
    logger.mask(issued.token);
    if (refresh || this.tokenExpiresAt === 0) {
      const expiresAt = Date.parse(issued.expiresAt);
      this.tokenExpiresAt = Number.isNaN(expiresAt) ? Date.now() + 55 * 60_000 : expiresAt;
      logger.info(`Signed in as GitHub App ${auth.appId}, installation ${auth.installationId}`);
    }
    return issued.token;
  }
}
