import { readFileSync } from 'node:fs';

/**
 * The local certificate for 127.0.0.1 that scripts/with-env.sh makes and tells Node to trust.
 * Azurite, the Entra double and the proxies serve it.
 */
export function localTls(): { cert: string; key: string; certPath: string; keyPath: string } {
  const certPath = process.env.NODE_EXTRA_CA_CERTS;
  const keyPath = process.env.LOCAL_TLS_KEY;
  if (!certPath || !keyPath) {
    throw new Error(
      'NODE_EXTRA_CA_CERTS and LOCAL_TLS_KEY are not set: run through scripts/with-env.sh ' +
        '(npm test, npm run test:all, npm run demo do).',
    );
  }
  return {
    cert: readFileSync(certPath, 'utf8'),
    key: readFileSync(keyPath, 'utf8'),
    certPath,
    keyPath,
  };
}
