/**
 * An HTTP answer with a status the caller did not expect. Every service's errors (storage,
 * registry, Kubernetes, ARM) are this class or a subclass of it, so the retry policy and the
 * messages treat them alike, and each keeps the service's own code and message.
 */
export class HttpError extends Error {
  constructor(
    message: string,
    readonly status: number,
    /** The service's own error code (x-ms-error-code, a registry's errors[].code, Status.reason). */
    readonly code: string | undefined,
    /** Retry-After in milliseconds, when the server sent one. */
    readonly retryAfterMs?: number,
    /** The service's own message, as it wrote it. */
    readonly serviceMessage?: string,
  ) {
    super(message);
    this.name = 'HttpError';
  }
}

/** What a service's error body says, in its own words. */
export interface ServiceError {
  code?: string;
  message?: string;
  /** Anything else the service said that callers act on (a Kubernetes Status's details). */
  details?: Record<string, unknown>;
}

/** Reads a service's error body (XML, JSON, text) into its code and message. */
export type ErrorBodyParser = (body: string) => ServiceError;

/** Parses Retry-After, either seconds or an HTTP date, into milliseconds from `now`. */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (!value) return undefined;
  if (/^\d+$/.test(value.trim())) return Number(value.trim()) * 1000;
  const date = Date.parse(value);
  return Number.isNaN(date) ? undefined : Math.max(0, date - now);
}

/** Azure Storage and S3: `<Error><Code>…</Code><Message>…</Message></Error>`. */
export const xmlErrorBody: ErrorBodyParser = (body) => ({
  code: /<Code>([^<]+)<\/Code>/.exec(body)?.[1],
  message: /<Message>([^<]+)<\/Message>/.exec(body)?.[1]?.split('\n')[0],
});
