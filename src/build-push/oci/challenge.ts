/** A registry's `WWW-Authenticate` answer: how and where to get a token. */
export interface Challenge {
  scheme: 'bearer' | 'basic';
  realm?: string;
  service?: string;
  scope?: string;
  error?: string;
}

/**
 * Parses `Bearer realm="https://x/oauth2/token",service="x",scope="repository:a:pull"` (or
 * `Basic realm="..."`). Values may be quoted, with backslash escapes, or bare tokens.
 */
export function parseChallenge(header: string | undefined): Challenge | undefined {
  if (!header) return undefined;
  const match = /^\s*(bearer|basic)\b\s*(.*)$/i.exec(header);
  if (!match) return undefined;
  const params: Record<string, string> = {};
  const pattern = /([a-z_]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?\s*/gi;
  for (const param of match[2].matchAll(pattern)) {
    params[param[1].toLowerCase()] =
      param[2] !== undefined ? param[2].replace(/\\(.)/g, '$1') : param[3];
  }
  return {
    scheme: match[1].toLowerCase() as Challenge['scheme'],
    realm: params.realm,
    service: params.service,
    scope: params.scope,
    error: params.error,
  };
}
