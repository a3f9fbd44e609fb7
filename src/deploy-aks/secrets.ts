import { createHash } from 'node:crypto';
import type { Logger } from '../common/logger';
import type { KubeObject } from './manifests';

/**
 * Secret values must never reach a log, a job summary or the bundle artifact: each value is
 * registered as a mask, and copies shown to people carry a placeholder with a short hash, so
 * a diff still shows which values changed.
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

/** A copy of the object whose Secret values are replaced by `(redacted, sha256:<12 hex>)`. */
export function redactSecret(object: KubeObject): KubeObject {
  if (object.kind !== 'Secret') return object;
  const copy = structuredClone(object);
  for (const field of ['data', 'stringData'] as const) {
    const values = copy[field] as Record<string, unknown> | undefined;
    if (!values) continue;
    for (const [key, value] of Object.entries(values)) {
      const hash = createHash('sha256').update(String(value)).digest('hex').slice(0, 12);
      values[key] = `(redacted, sha256:${hash})`;
    }
  }
  // kubectl's last-applied annotation would carry the values too.
  const annotations = (copy.metadata.annotations ?? {}) as Record<string, string>;
  if (annotations['kubectl.kubernetes.io/last-applied-configuration']) {
    annotations['kubectl.kubernetes.io/last-applied-configuration'] = '(redacted)';
  }
  return copy;
}
