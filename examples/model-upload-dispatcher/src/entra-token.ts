import { createPublicKey, verify, type JsonWebKey } from 'node:crypto';
import { errorMessage } from '../../../src/common/errors';
import { EVENT_GRID_ROLE, type EntraSettings } from './settings';

/** Keys are re-read after this long, and at most this often when a token names an unknown key. */
const KEYS_MAX_AGE_MS = 24 * 3600_000;
const UNKNOWN_KEY_REFRESH_MS = 60_000;
/** Clock skew tolerated on exp and nbf. */
const SKEW_SECONDS = 300;
const FETCH_TIMEOUT_MS = 10_000;

/** Why a delivery's token was refused (answered 401, without the token). */
export class TokenRefused extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TokenRefused';
  }
}

/** Entra could not be asked for its keys (answered 503: Event Grid delivers again later). */
export class KeysUnavailable extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'KeysUnavailable';
  }
}

type Fetch = (
  url: string,
  init: { signal: AbortSignal },
) => Promise<Response | { ok: boolean; status: number; json(): Promise<unknown> }>;

interface Keys {
  issuer: string;
  keys: JsonWebKey[];
  fetchedAt: number;
}

const decodePart = (part: string): Record<string, unknown> => {
  const value: unknown = JSON.parse(Buffer.from(part, 'base64url').toString('utf8'));
  if (typeof value !== 'object' || value === null || Array.isArray(value))
    throw new Error('not an object');
  return value as Record<string, unknown>;
};

/**
 * Checks the bearer token Event Grid sends to a webhook whose subscription uses Entra
 * authentication: an RS256 JWT signed by one of the tenant's published keys (read from its
 * OpenID metadata, re-read when a token names a key not seen yet, as after Entra's key
 * rollover), issued by the tenant (v1 `https://sts.windows.net/{tid}/` or the metadata's v2
 * issuer), for the webhook app (`aud`), to Event Grid's application (`appid`/`azp`) holding the
 * AzureEventGridSecureWebhookSubscriber role, and within its lifetime.
 */
export class EntraTokenValidator {
  private cached?: Keys;
  private pending?: Promise<Keys>;

  constructor(
    private readonly settings: EntraSettings,
    private readonly fetch: Fetch,
    private readonly now: () => number = Date.now,
  ) {}

  /** Resolves to the token's claims, or throws TokenRefused / KeysUnavailable. */
  async check(authorization: string | undefined): Promise<Record<string, unknown>> {
    const token = /^Bearer ([A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+)$/.exec(
      authorization?.trim() ?? '',
    )?.[1];
    if (!token) throw new TokenRefused('no Entra bearer token (Authorization: Bearer <JWT>)');
    const [headerPart, claimsPart, signaturePart] = token.split('.');
    let header: Record<string, unknown>;
    let claims: Record<string, unknown>;
    try {
      header = decodePart(headerPart);
      claims = decodePart(claimsPart);
    } catch {
      throw new TokenRefused('the bearer token is not a JWT');
    }
    if (header.alg !== 'RS256' || typeof header.kid !== 'string') {
      throw new TokenRefused(
        `the token's algorithm ${String(header.alg)} is not RS256 with a key id`,
      );
    }
    let keys = await this.keys(false);
    let key = keys.keys.find((candidate) => candidate.kid === header.kid);
    if (!key && this.now() - keys.fetchedAt > UNKNOWN_KEY_REFRESH_MS) {
      keys = await this.keys(true);
      key = keys.keys.find((candidate) => candidate.kid === header.kid);
    }
    if (!key)
      throw new TokenRefused(`the token is signed with key ${header.kid}, not one of the tenant's`);
    let valid = false;
    try {
      valid = verify(
        'sha256',
        Buffer.from(`${headerPart}.${claimsPart}`),
        createPublicKey({ key, format: 'jwk' }),
        Buffer.from(signaturePart, 'base64url'),
      );
    } catch {
      valid = false;
    }
    if (!valid) throw new TokenRefused("the token's signature does not verify");

    const { tenantId, audiences, eventGridAppId } = this.settings;
    const issuers = [`https://sts.windows.net/${tenantId}/`, keys.issuer];
    if (typeof claims.iss !== 'string' || !issuers.includes(claims.iss)) {
      throw new TokenRefused(`the token's issuer ${String(claims.iss)} is not tenant ${tenantId}`);
    }
    if (String(claims.tid).toLowerCase() !== tenantId) {
      throw new TokenRefused(`the token's tenant ${String(claims.tid)} is not ${tenantId}`);
    }
    if (typeof claims.aud !== 'string' || !audiences.includes(claims.aud)) {
      throw new TokenRefused(
        `the token's audience ${String(claims.aud)} is not this webhook's (${audiences.join(', ')})`,
      );
    }
    const seconds = this.now() / 1000;
    if (typeof claims.exp !== 'number' || claims.exp + SKEW_SECONDS < seconds) {
      throw new TokenRefused('the token has expired');
    }
    if (typeof claims.nbf === 'number' && claims.nbf - SKEW_SECONDS > seconds) {
      throw new TokenRefused('the token is not valid yet');
    }
    const caller = String(claims.appid ?? claims.azp ?? '').toLowerCase();
    if (caller !== eventGridAppId) {
      throw new TokenRefused(`the token was issued to application ${caller}, not Event Grid's`);
    }
    const roles = Array.isArray(claims.roles) ? claims.roles : [];
    if (!roles.includes(EVENT_GRID_ROLE)) {
      throw new TokenRefused(`the token does not hold the ${EVENT_GRID_ROLE} role`);
    }
    return claims;
  }

  private async keys(refresh: boolean): Promise<Keys> {
    const cached = this.cached;
    if (!refresh && cached && this.now() - cached.fetchedAt < KEYS_MAX_AGE_MS) return cached;
    this.pending ??= this.load().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async load(): Promise<Keys> {
    const authority = this.settings.authorityHost.toString().replace(/\/+$/, '');
    const metadataUrl = `${authority}/${this.settings.tenantId}/v2.0/.well-known/openid-configuration`;
    const metadata = await this.getJson(metadataUrl);
    const issuer = metadata.issuer;
    const jwksUri = metadata.jwks_uri;
    // The keys must come from the authority itself, over https, whatever the metadata says.
    if (
      typeof issuer !== 'string' ||
      typeof jwksUri !== 'string' ||
      new URL(jwksUri).origin !== new URL(authority).origin
    ) {
      throw new KeysUnavailable(
        `${metadataUrl}: no issuer, or jwks_uri not on ${new URL(authority).origin}`,
      );
    }
    const jwks = await this.getJson(jwksUri);
    if (!Array.isArray(jwks.keys)) throw new KeysUnavailable(`${jwksUri}: no keys`);
    const keys = (jwks.keys as JsonWebKey[]).filter(
      (key) =>
        key && key.kty === 'RSA' && typeof key.kid === 'string' && (key.use ?? 'sig') === 'sig',
    );
    this.cached = { issuer, keys, fetchedAt: this.now() };
    return this.cached;
  }

  private async getJson(url: string): Promise<Record<string, unknown>> {
    try {
      const response = await this.fetch(url, { signal: AbortSignal.timeout(FETCH_TIMEOUT_MS) });
      if (!response.ok) throw new Error(`HTTP ${response.status}`);
      const body = await response.json();
      if (typeof body !== 'object' || body === null) throw new Error('not a JSON object');
      return body as Record<string, unknown>;
    } catch (error) {
      throw new KeysUnavailable(`${url}: ${errorMessage(error)}`);
    }
  }
}
