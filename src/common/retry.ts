import { errorMessage } from './errors';
import { HttpError } from './http-error';
import type { Logger } from './logger';

/** How often and how patiently to retry a transient failure. */
export interface RetryPolicy {
  /** Attempts in all, the first one included. */
  maxAttempts: number;
  /** Delay ceiling of the first retry; doubles with each further one. */
  baseDelayMs: number;
  /** No computed delay exceeds this. */
  maxDelayMs: number;
  /** A server's Retry-After is honoured up to this. */
  maxRetryAfterMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 6,
  baseDelayMs: 250,
  maxDelayMs: 8_000,
  maxRetryAfterMs: 60_000,
};

const TRANSIENT_CODES = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'ECONNABORTED',
  'EPIPE',
  'ETIMEDOUT',
  'ESOCKETTIMEDOUT',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ERR_STREAM_PREMATURE_CLOSE',
  'UND_ERR_SOCKET',
]);

/** Timeouts, dropped connections, 408, 429 and 5xx are worth another try; nothing else is. */
export function isTransient(error: unknown): boolean {
  if (error instanceof HttpError) {
    return error.status === 408 || error.status === 429 || error.status >= 500;
  }
  if (error instanceof Error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code && TRANSIENT_CODES.has(code)) return true;
    return /socket hang up|aborted|premature close|timed out/i.test(error.message);
  }
  return false;
}

/**
 * Full-jitter exponential backoff: a random delay up to base * 2^retry, capped; a server's
 * Retry-After wins when it is longer, within its own cap.
 */
export function backoffDelay(
  retry: number,
  policy: RetryPolicy,
  retryAfterMs?: number,
  random: () => number = Math.random,
): number {
  const ceiling = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** retry);
  const jittered = Math.round(random() * ceiling);
  if (retryAfterMs !== undefined && retryAfterMs > jittered) {
    return Math.min(retryAfterMs, policy.maxRetryAfterMs);
  }
  return jittered;
}

export const sleep = (ms: number): Promise<void> =>
  new Promise((resolve) => setTimeout(resolve, ms));

export interface RetryOptions {
  policy?: RetryPolicy;
  logger?: Logger;
  /** Names the operation in retry log lines. */
  description: string;
  /** Decides whether an error is worth another attempt; defaults to isTransient. */
  retryable?: (error: unknown) => boolean;
  wait?: (ms: number) => Promise<void>;
}

/** Runs `operation`, retrying transient failures with backoff, a bounded number of times. */
export async function withRetry<T>(
  operation: (attempt: number) => Promise<T>,
  options: RetryOptions,
): Promise<T> {
  const policy = options.policy ?? DEFAULT_RETRY;
  const retryable = options.retryable ?? isTransient;
  const wait = options.wait ?? sleep;
  for (let attempt = 1; ; attempt++) {
    try {
      return await operation(attempt);
    } catch (error) {
      if (attempt >= policy.maxAttempts || !retryable(error)) throw error;
      const retryAfter = error instanceof HttpError ? error.retryAfterMs : undefined;
      const delay = backoffDelay(attempt - 1, policy, retryAfter);
      options.logger?.info(
        `${options.description}: ${errorMessage(error)}; retrying in ${delay} ms ` +
          `(attempt ${attempt + 1} of ${policy.maxAttempts})`,
      );
      await wait(delay);
    }
  }
}

/** A short name for an error in retry log lines: its code, its HTTP status, or its message. */
export function errorCodeOf(error: unknown): string {
  if (error instanceof HttpError)
    return `HTTP ${error.status}${error.code ? ` ${error.code}` : ''}`;
  const code = (error as NodeJS.ErrnoException)?.code;
  return code ?? (error instanceof Error ? error.message : String(error));
}
