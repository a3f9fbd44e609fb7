import { ConfigurationError, quote } from './errors';
import { isLoopback } from './proxy';

/** Reads one raw input by its action.yml name; '' when unset. */
export type InputSource = (name: string) => string;

/**
 * The runner passes input `some-name` as the environment variable `INPUT_SOME-NAME`
 * (spaces become underscores, letters upper-cased); this reads it the way @actions/core does.
 */
export function envInputSource(env: NodeJS.ProcessEnv = process.env): InputSource {
  return (name) => (env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] ?? '').trim();
}

/**
 * Typed access to an action's inputs. Every accessor records the name it read, so a test can
 * check that an action reads only inputs its action.yml declares.
 */
export class Inputs {
  readonly requested = new Set<string>();

  constructor(private readonly source: InputSource) {}

  /** The trimmed value, or undefined when the input is empty or unset. */
  optional(name: string): string | undefined {
    this.requested.add(name);
    const value = this.source(name);
    return value === '' ? undefined : value;
  }

  string(name: string, fallback: string): string {
    return this.optional(name) ?? fallback;
  }

  required(name: string, what: string): string {
    const value = this.optional(name);
    if (value === undefined) {
      throw new ConfigurationError(`Input '${name}' is required: ${what}.`);
    }
    return value;
  }

  boolean(name: string, fallback: boolean): boolean {
    const value = this.optional(name);
    if (value === undefined) return fallback;
    if (/^(true|yes|on|1)$/i.test(value)) return true;
    if (/^(false|no|off|0)$/i.test(value)) return false;
    throw new ConfigurationError(`Invalid ${name} ${quote(value)}. Expected true or false.`);
  }

  integer(name: string, fallback: number, min: number, max: number): number {
    const value = this.optional(name);
    if (value === undefined) return fallback;
    const parsed = /^\d+$/.test(value) ? Number(value) : NaN;
    if (!Number.isSafeInteger(parsed) || parsed < min || parsed > max) {
      throw new ConfigurationError(
        `Invalid ${name} ${quote(value)}. Expected a whole number from ${min} to ${max}.`,
      );
    }
    return parsed;
  }

  choice<T extends string>(name: string, allowed: readonly T[], fallback: T): T {
    const value = this.optional(name);
    if (value === undefined) return fallback;
    const match = allowed.find((option) => option.toLowerCase() === value.toLowerCase());
    if (!match) {
      throw new ConfigurationError(
        `Invalid ${name} ${quote(value)}. Expected one of: ${allowed.join(', ')}.`,
      );
    }
    return match;
  }

  /** A byte size such as `8MiB`, `512KiB`, `1GiB`, `4M` or a plain number of bytes. */
  byteSize(name: string, fallback: number, min: number, max: number): number {
    const value = this.optional(name);
    if (value === undefined) return fallback;
    const bytes = parseByteSize(value);
    if (bytes === undefined || bytes < min || bytes > max) {
      throw new ConfigurationError(
        `Invalid ${name} ${quote(value)}. Expected a size from ${min} to ${max} bytes, ` +
          `such as 4MiB, 8MiB or 16777216.`,
      );
    }
    return bytes;
  }

  /** Entries separated by newlines or commas, trimmed, empty ones and `#` comments dropped. */
  list(name: string): string[] {
    return splitEntries(this.optional(name) ?? '', /[\n,]/);
  }

  /** Entries one per line, trimmed, empty ones and `#` comments dropped. */
  lines(name: string): string[] {
    return splitEntries(this.optional(name) ?? '', /\n/);
  }
}

function splitEntries(value: string, separator: RegExp): string[] {
  return value
    .split(separator)
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '' && !entry.startsWith('#'));
}

const SIZE_UNITS: Record<string, number> = {
  '': 1,
  b: 1,
  k: 1024,
  kb: 1000,
  kib: 1024,
  m: 1024 ** 2,
  mb: 1000 ** 2,
  mib: 1024 ** 2,
  g: 1024 ** 3,
  gb: 1000 ** 3,
  gib: 1024 ** 3,
};

export function parseByteSize(value: string): number | undefined {
  const match = /^(\d+(?:\.\d+)?)\s*([a-z]*)$/i.exec(value.trim());
  if (!match) return undefined;
  const unit = SIZE_UNITS[match[2].toLowerCase()];
  if (unit === undefined) return undefined;
  return Math.round(Number(match[1]) * unit);
}

/**
 * Checks an endpoint that will receive a credential (a token, a password, a SAS): https, or
 * plain http only to a loopback address, as docker treats a localhost registry.
 */
export function requireSecureEndpoint(input: string, url: URL, example: string): URL {
  if (url.protocol === 'https:' || (url.protocol === 'http:' && isLoopback(url.hostname))) {
    return url;
  }
  throw new ConfigurationError(
    `Invalid ${input} ${quote(url.origin)}: credentials are sent to it, so it must be an ` +
      `https:// URL (plain http only for a loopback address), such as ${example}.`,
  );
}
