import { ConfigurationError, quote } from '../../common/errors';

/** One sample request of the analysis file (a line of JSON Lines). */
export interface Sample {
  /** 1-based line in the file, for the summary and error messages. */
  line: number;
  /** The sample's own name, when it has one. */
  id?: string;
  method: string;
  /** Overrides analysis-path for this sample. */
  path?: string;
  /** The request body, as JSON text; none for a GET. */
  body?: string;
  /** The right answer at analysis-field, when the file says it. */
  expected?: unknown;
  hasExpected: boolean;
}

/** More samples than this make an analysis that takes minutes, not seconds: refused. */
export const MAX_SAMPLES = 5_000;
const KEYS = new Set(['id', 'request', 'expected', 'path', 'method']);

/**
 * Reads the analysis file: JSON Lines, one object per line,
 * `{"id": "...", "request": <JSON body>, "expected": <answer>, "path": "/score", "method": "POST"}`
 * where only `request` (or a `path` to GET) is needed. Blank lines are skipped; anything else
 * that is not such an object is an error naming the input and the line.
 */
export function parseSamples(text: string, file: string): Sample[] {
  const samples: Sample[] = [];
  const lines = text.replace(/^\uFEFF/, '').split(/\r?\n/);
  const bad = (line: number, why: string) =>
    new ConfigurationError(
      `Invalid analysis-requests ${quote(file)} line ${line}: ${why}. Expected one JSON object a ` +
        `line, such as {"request": {"images": ["..."]}, "expected": "7 seven"}.`,
    );
  lines.forEach((raw, index) => {
    const line = index + 1;
    if (raw.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(raw);
    } catch (error) {
      throw bad(line, `not JSON (${(error as Error).message})`);
    }
    if (!parsed || typeof parsed !== 'object' || Array.isArray(parsed)) {
      throw bad(line, 'not a JSON object');
    }
    const entry = parsed as Record<string, unknown>;
    const unknown = Object.keys(entry).filter((key) => !KEYS.has(key));
    if (unknown.length > 0) throw bad(line, `unknown key(s) ${unknown.join(', ')}`);
    if (!('request' in entry) && typeof entry.path !== 'string') {
      throw bad(line, 'it has no "request" (the body to send)');
    }
    if (entry.path !== undefined && (typeof entry.path !== 'string' || !entry.path.startsWith('/')))
      throw bad(line, '"path" must be a string starting with /');
    if (entry.method !== undefined && !/^(GET|POST|PUT|PATCH)$/i.test(String(entry.method)))
      throw bad(line, '"method" must be GET, POST, PUT or PATCH');
    if (entry.id !== undefined && typeof entry.id !== 'string' && typeof entry.id !== 'number')
      throw bad(line, '"id" must be a string or a number');
    const hasBody = 'request' in entry;
    samples.push({
      line,
      id: entry.id === undefined ? undefined : String(entry.id),
      method: entry.method ? String(entry.method).toUpperCase() : hasBody ? 'POST' : 'GET',
      path: entry.path as string | undefined,
      body: hasBody ? JSON.stringify(entry.request) : undefined,
      expected: entry.expected,
      hasExpected: 'expected' in entry,
    });
  });
  if (samples.length === 0) {
    throw new ConfigurationError(
      `Invalid analysis-requests ${quote(file)}: the file holds no sample. Expected one JSON ` +
        `object a line, such as {"request": {"images": ["..."]}, "expected": "7 seven"}.`,
    );
  }
  if (samples.length > MAX_SAMPLES) {
    throw new ConfigurationError(
      `Invalid analysis-requests ${quote(file)}: ${samples.length} samples; at most ${MAX_SAMPLES} ` +
        `are sent (a few hundred tell a broken model from a good one).`,
    );
  }
  return samples;
}
