import { HttpError } from '../../common/http-error';

/** A Kubernetes Status answer to a request, with what was asked for. */
export class KubeApiError extends HttpError {
  constructor(
    message: string,
    status: number,
    /** Status.reason, e.g. NotFound, Conflict, Forbidden, Invalid. */
    readonly reason: string | undefined,
    readonly details: Record<string, unknown> | undefined,
    retryAfterMs?: number,
    serviceMessage?: string,
  ) {
    super(message, status, reason, retryAfterMs, serviceMessage);
    this.name = 'KubeApiError';
  }
}

/** The API server could not be reached at all. */
export class UnreachableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UnreachableError';
  }
}
