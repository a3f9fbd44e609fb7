import type { Logger } from '../../../src/common/logger';

/** Where log lines finally go: the Functions InvocationContext, the console, a test's array. */
export interface LogSink {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/**
 * A Logger that removes every masked secret from each line before it reaches the sink:
 * Functions logs have no ::add-mask::, so masking happens here.
 */
export class RedactingLogger implements Logger {
  private readonly secrets = new Set<string>();

  constructor(private readonly sink: LogSink) {}

  mask(secret: string): void {
    if (secret && secret.length >= 4) this.secrets.add(secret);
  }
  info(message: string): void {
    this.sink.info(this.redact(message));
  }
  warning(message: string): void {
    this.sink.warn(this.redact(message));
  }
  debug(message: string): void {
    this.sink.debug(this.redact(message));
  }
  async group<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.info(name);
    return fn();
  }

  private redact(message: string): string {
    let result = message;
    for (const secret of this.secrets) result = result.split(secret).join('***');
    return result;
  }
}
