/**
 * What logic modules need from a log. main.ts passes one backed by @actions/core; tests pass
 * one that records lines, so no logic module imports @actions/core.
 */
export interface Logger {
  info(message: string): void;
  warning(message: string): void;
  debug(message: string): void;
  /** Runs `fn` inside a collapsible log group. */
  group<T>(name: string, fn: () => Promise<T>): Promise<T>;
  /** Registers a value that must never appear in the log. */
  mask(secret: string): void;
}

/** A logger that keeps lines in memory; used by tests and by callers that print later. */
export class MemoryLogger implements Logger {
  readonly lines: string[] = [];
  readonly secrets: string[] = [];

  info(message: string): void {
    this.lines.push(message);
  }
  warning(message: string): void {
    this.lines.push(`warning: ${message}`);
  }
  debug(message: string): void {
    this.lines.push(`debug: ${message}`);
  }
  async group<T>(name: string, fn: () => Promise<T>): Promise<T> {
    this.lines.push(`group: ${name}`);
    return fn();
  }
  mask(secret: string): void {
    if (secret) this.secrets.push(secret);
  }
}
