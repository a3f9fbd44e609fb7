import { HttpError, parseRetryAfter } from '../../src/common/http-error';
import { backoffDelay, DEFAULT_RETRY, isTransient, withRetry } from '../../src/common/retry';

describe('isTransient', () => {
  it.each([408, 429, 500, 503])('retries HTTP %i', (status) => {
    expect(isTransient(new HttpError('x', status, undefined))).toBe(true);
  });
  it.each([400, 401, 403, 404, 412])('does not retry HTTP %i', (status) => {
    expect(isTransient(new HttpError('x', status, undefined))).toBe(false);
  });
  it('retries resets and timeouts, not other errors', () => {
    expect(isTransient(Object.assign(new Error('x'), { code: 'ECONNRESET' }))).toBe(true);
    expect(isTransient(new Error('socket hang up'))).toBe(true);
    expect(isTransient(Object.assign(new Error('x'), { code: 'ENOTFOUND' }))).toBe(false);
    expect(isTransient(new TypeError('bad'))).toBe(false);
  });
});

describe('backoffDelay', () => {
  it('grows exponentially within a cap, with full jitter', () => {
    expect(backoffDelay(0, DEFAULT_RETRY, undefined, () => 1)).toBe(250);
    expect(backoffDelay(3, DEFAULT_RETRY, undefined, () => 1)).toBe(2000);
    expect(backoffDelay(10, DEFAULT_RETRY, undefined, () => 1)).toBe(DEFAULT_RETRY.maxDelayMs);
    expect(backoffDelay(3, DEFAULT_RETRY, undefined, () => 0.5)).toBe(1000);
  });
  it('honours a longer Retry-After, up to its own cap', () => {
    expect(backoffDelay(0, DEFAULT_RETRY, 3000, () => 1)).toBe(3000);
    expect(backoffDelay(0, DEFAULT_RETRY, 600_000, () => 1)).toBe(DEFAULT_RETRY.maxRetryAfterMs);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP dates', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    const now = Date.parse('Wed, 21 Oct 2015 07:28:00 GMT');
    expect(parseRetryAfter('Wed, 21 Oct 2015 07:28:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter(undefined)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
  });
});

describe('withRetry', () => {
  const noWait = async () => undefined;

  it('retries transient failures and returns the first success', async () => {
    let calls = 0;
    const result = await withRetry(
      async () => {
        calls++;
        if (calls < 3) throw new HttpError('busy', 503, 'ServerBusy');
        return 'ok';
      },
      { description: 'op', wait: noWait },
    );
    expect(result).toBe('ok');
    expect(calls).toBe(3);
  });

  it('gives up after maxAttempts', async () => {
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw new HttpError('busy', 503, undefined);
        },
        { description: 'op', wait: noWait, policy: { ...DEFAULT_RETRY, maxAttempts: 4 } },
      ),
    ).rejects.toThrow('busy');
    expect(calls).toBe(4);
  });

  it('does not retry a permanent failure', async () => {
    let calls = 0;
    await expect(
      withRetry(
        async () => {
          calls++;
          throw new HttpError('nope', 404, 'BlobNotFound');
        },
        { description: 'op', wait: noWait },
      ),
    ).rejects.toThrow('nope');
    expect(calls).toBe(1);
  });

  it('waits what the server asked for', async () => {
    const waits: number[] = [];
    let calls = 0;
    await withRetry(
      async () => {
        if (calls++ === 0) throw new HttpError('slow down', 429, undefined, 7000);
      },
      { description: 'op', wait: async (ms) => void waits.push(ms) },
    );
    expect(waits).toEqual([7000]);
  });
});
