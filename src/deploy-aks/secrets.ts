import { createHmac, randomBytes } from 'node:crypto';
import type { Logger } from '../common/logger';
import type { KubeObject } from './manifests';

/**
 * Secret values must never reach a log, a job summary or the bundle artifact: each value is
 * registered as a mask, and copies shown to people carry a placeholder with a short hash, so
 * a diff still shows which values changed (the tag is keyed per run: see redactSecret).
 */
export function maskSecretValues(objects: KubeObject[], logger: Logger): void {
  for (const object of objects) {
    if (object.kind !== 'Secret') continue;
    for (const field of ['data', 'stringData'] as const) {
      for (const value of Object.values((object[field] as Record<string, unknown>) ?? {})) {
        if (typeof value !== 'string' || value === '') continue;
        logger.mask(value);
        if (field === 'data') logger.mask(Buffer.from(value, 'base64').toString('utf8'));
        else logger.mask(Buffer.from(value).toString('base64'));
      }
    }
  }
}

/**
 * Keys the placeholders: fresh for each run, so the same value gets the same placeholder within
 * a run (a diff shows what changed) but an unsalted hash of a guessable secret (a short password,
 * a known token format) is never published for anyone to test guesses against.
 */
const REDACTION_KEY = randomBytes(32);

/** A copy of the object whose Secret values are replaced by `(redacted, hmac:<12 hex>)`. */
export function redactSecret(object: KubeObject): KubeObject {
  if (object.kind !== 'Secret') return object;
  const copy = structuredClone(object);
  for (const field of ['data', 'stringData'] as const) {
    const values = copy[field] as Record<string, unknown> | undefined;
    if (!values) continue;
    for (const [key, value] of Object.entries(values)) {
      const tag = createHmac('sha256', REDACTION_KEY).update(String(value)).digest('hex');
      values[key] = `(redacted, hmac:${tag.slice(0, 12)})`;
    }
  }
  // kubectl's last-applied annotation would carry the values too.
  const annotations = (copy.metadata.annotations ?? {}) as Record<string, string>;
  if (annotations['kubectl.kubernetes.io/last-applied-configuration']) {
    annotations['kubectl.kubernetes.io/last-applied-configuration'] = '(redacted)';
  }
  return copy;
}
