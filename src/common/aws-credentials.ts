import { XMLParser } from 'fast-xml-parser';
import type { IdTokenProvider } from './credential';
import { ConfigurationError, errorMessage, quote } from './errors';
import { credentialForm, readBody, send, sendWithRetry, statusError } from './http';
import { HttpError, xmlErrorBody } from './http-error';
import type { Logger } from './logger';
import { unreachable } from './proxy';

/** How to trade this job's GitHub OIDC token for temporary AWS credentials. */
export interface AwsWebIdentitySettings {
  /** ARN of the IAM role whose trust policy admits GitHub's OIDC provider for this repository. */
  roleArn: string;
  /** Names the session in CloudTrail and in the assumed-role ARN. */
  roleSessionName: string;
  /** Audience of the GitHub OIDC token; the IAM OIDC provider lists it as a client id. */
  audience: string;
  /** Region of the STS endpoint (the regional endpoint is used, as the SDK does by default). */
  region: string;
  /** STS endpoint override (a VPC endpoint, or a local double in tests). */
  stsEndpoint?: URL;
}

/** Temporary credentials of the assumed role. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration?: Date;
}

export const DEFAULT_AWS_AUDIENCE = 'sts.amazonaws.com';

const ROLE_ARN = /^arn:aws(-cn|-us-gov|-iso|-iso-b)?:iam::\d{12}:role\/[\w+=,.@/-]{1,512}$/;
const SESSION_NAME = /^[\w+=,.@-]{2,64}$/;

/** Checks a role ARN the way IAM writes it. */
export function checkRoleArn(value: string): string {
  if (!ROLE_ARN.test(value)) {
    throw new ConfigurationError(
      `Invalid role-to-assume ${quote(value)}. Expected an IAM role ARN such as ` +
        `arn:aws:iam::123456789012:role/fetch-model (the role the GitHub OIDC provider may assume).`,
    );
  }
  return value;
}

export function checkRoleSessionName(value: string): string {
  if (!SESSION_NAME.test(value)) {
    throw new ConfigurationError(
      `Invalid role-session-name ${quote(value)}. Expected 2 to 64 letters, digits or any of ` +
        `_+=,.@- characters.`,
    );
  }
  return value;
}

/** The parameters of AssumeRoleWithWebIdentity, named as STS names them. */
export interface AssumeRoleInput {
  RoleArn: string;
  RoleSessionName: string;
  WebIdentityToken: string;
  DurationSeconds: number;
}

/** What AssumeRoleWithWebIdentity answers, named as STS names it. */
export interface AssumeRoleOutput {
  Credentials?: {
    AccessKeyId?: string;
    SecretAccessKey?: string;
    SessionToken?: string;
    Expiration?: Date;
  };
  AssumedRoleUser?: { Arn?: string };
}

/** The part of STS the credential source uses. */
export interface StsApi {
  assumeRoleWithWebIdentity(input: AssumeRoleInput): Promise<AssumeRoleOutput>;
}

/** `https://sts.<region>.amazonaws.com` (`.com.cn` in China), the regional endpoint. */
export function stsEndpoint(settings: AwsWebIdentitySettings): URL {
  if (settings.stsEndpoint) return settings.stsEndpoint;
  const suffix = settings.region.startsWith('cn-') ? 'amazonaws.com.cn' : 'amazonaws.com';
  return new URL(`https://sts.${settings.region}.${suffix}/`);
}

/**
 * STS's query API over the shared transport: a form POST, an XML answer. The call is unsigned
 * (the web identity token is the credential), so no SDK is needed for it; it gets the same
 * proxy, timeout and retry rules as every other request.
 */
export function createStsClient(settings: AwsWebIdentitySettings, logger: Logger): StsApi {
  const url = stsEndpoint(settings);
  const parser = new XMLParser({ ignoreAttributes: true, parseTagValue: false });
  return {
    async assumeRoleWithWebIdentity(input) {
      const form = new URLSearchParams({
        Action: 'AssumeRoleWithWebIdentity',
        Version: '2011-06-15',
        ...Object.fromEntries(Object.entries(input).map(([key, value]) => [key, String(value)])),
      });
      const response = await sendWithRetry(
        () => send(credentialForm(url, form)),
        'AWS STS AssumeRoleWithWebIdentity',
        { logger, parse: xmlErrorBody },
      );
      if (response.status !== 200) {
        throw await statusError(response, 'AWS STS AssumeRoleWithWebIdentity', xmlErrorBody);
      }
      const xml = (await readBody(response.body, 1024 * 1024)).toString('utf8');
      const result =
        parser.parse(xml)?.AssumeRoleWithWebIdentityResponse?.AssumeRoleWithWebIdentityResult ?? {};
      const credentials = result.Credentials ?? {};
      return {
        Credentials: {
          AccessKeyId: credentials.AccessKeyId,
          SecretAccessKey: credentials.SecretAccessKey,
          SessionToken: credentials.SessionToken,
          Expiration: credentials.Expiration ? new Date(credentials.Expiration) : undefined,
        },
        AssumedRoleUser: { Arn: result.AssumedRoleUser?.Arn },
      };
    },
  };
}

/**
 * Temporary credentials for an IAM role, from AssumeRoleWithWebIdentity with a fresh GitHub
 * OIDC token each time. Cached until five minutes before they expire, shared by concurrent
 * callers, and masked before any code could print them. They stay in this process: nothing
 * exports them to later steps.
 */
export class WebIdentityCredentials {
  private cached?: AwsCredentials;
  private pending?: Promise<AwsCredentials>;

  constructor(
    private readonly settings: AwsWebIdentitySettings,
    private readonly idToken: IdTokenProvider,
    private readonly sts: StsApi,
    private readonly logger: Logger,
    private readonly env: NodeJS.ProcessEnv,
  ) {}

  /** What `@smithy/signature-v4` calls for credentials before each signature. */
  readonly provider = (): Promise<AwsCredentials> => this.get();

  async get(): Promise<AwsCredentials> {
    const cached = this.cached;
    if (cached && (!cached.expiration || cached.expiration.getTime() - 5 * 60_000 > Date.now())) {
      return cached;
    }
    this.pending ??= this.assume().finally(() => (this.pending = undefined));
    return this.pending;
  }

  private async assume(): Promise<AwsCredentials> {
    if (!this.env.ACTIONS_ID_TOKEN_REQUEST_URL || !this.env.ACTIONS_ID_TOKEN_REQUEST_TOKEN) {
      throw new ConfigurationError(
        'GitHub did not give this job an OIDC token endpoint (ACTIONS_ID_TOKEN_REQUEST_URL is ' +
          "not set). Add 'permissions: id-token: write' to the workflow or job (keep " +
          "'contents: read' for checkout). Workflows triggered from forks never get one.",
      );
    }
    const token = await this.idToken(this.settings.audience);
    this.logger.mask(token);
    let output: AssumeRoleOutput;
    try {
      output = await this.sts.assumeRoleWithWebIdentity({
        RoleArn: this.settings.roleArn,
        RoleSessionName: this.settings.roleSessionName,
        WebIdentityToken: token,
        DurationSeconds: 3600,
      });
    } catch (error) {
      throw explainStsFailure(error, this.settings, token);
    }
    const credentials = output.Credentials;
    if (!credentials?.AccessKeyId || !credentials.SecretAccessKey || !credentials.SessionToken) {
      throw new Error('AWS STS answered AssumeRoleWithWebIdentity without credentials.');
    }
    // Masked before they are kept anywhere: the access key id too, as it names the session.
    this.logger.mask(credentials.AccessKeyId);
    this.logger.mask(credentials.SecretAccessKey);
    this.logger.mask(credentials.SessionToken);
    this.cached = {
      accessKeyId: credentials.AccessKeyId,
      secretAccessKey: credentials.SecretAccessKey,
      sessionToken: credentials.SessionToken,
      expiration: credentials.Expiration,
    };
    this.logger.info(
      `Assumed ${output.AssumedRoleUser?.Arn ?? this.settings.roleArn} with GitHub OIDC ` +
        `(audience ${this.settings.audience}); credentials expire ` +
        `${credentials.Expiration?.toISOString() ?? 'with the session'}.`,
    );
    return this.cached;
  }
}

/** The claims of the OIDC token that a trust policy tests, read without verifying it. */
function trustClaims(token: string): { sub?: string; aud?: string; iss?: string } {
  try {
    const claims = JSON.parse(Buffer.from(token.split('.')[1] ?? '', 'base64url').toString());
    const aud = Array.isArray(claims.aud) ? claims.aud.join(',') : claims.aud;
    return { sub: claims.sub, aud, iss: claims.iss };
  } catch {
    return {};
  }
}

/** STS's answer, turned into what to change in the role's trust policy or the OIDC provider. */
function explainStsFailure(error: unknown, settings: AwsWebIdentitySettings, token: string): Error {
  if (error instanceof ConfigurationError) return error;
  // No answer at all: a system error (ENOTFOUND, ECONNREFUSED...), directly or from the proxy.
  if (!(error instanceof HttpError) && typeof (error as NodeJS.ErrnoException)?.code === 'string') {
    return new Error(
      `Could not assume ${settings.roleArn} with GitHub OIDC: ` +
        unreachable(stsEndpoint(settings).origin, error),
    );
  }
  // STS names some codes with an Exception suffix (ExpiredTokenException); AccessDenied has none.
  const name = (error instanceof HttpError ? (error.code ?? '') : '').replace(/Exception$/, '');
  const message =
    error instanceof HttpError ? (error.serviceMessage ?? error.message) : errorMessage(error);
  const claims = trustClaims(token);
  const issuer = claims.iss ?? 'https://token.actions.githubusercontent.com';
  const host = issuer.replace(/^https:\/\//, '');
  const account = /::(\d{12}):/.exec(settings.roleArn)?.[1] ?? '<account>';
  if (name === 'AccessDenied') {
    return new ConfigurationError(
      `AWS STS refused to let this workflow assume ${settings.roleArn} (AccessDenied: ` +
        `${message}). The role's trust policy must allow sts:AssumeRoleWithWebIdentity for the ` +
        `federated principal arn:aws:iam::${account}:oidc-provider/${host}, with conditions that ` +
        `this job's token meets: "${host}:aud" = "${claims.aud ?? settings.audience}" and ` +
        `"${host}:sub" matching "${claims.sub ?? '?'}" (StringLike, e.g. repo:OWNER/REPO:*; ` +
        `case-sensitive). Check the role ARN too.`,
    );
  }
  if (name === 'InvalidIdentityToken' || name === 'IDPRejectedClaim') {
    return new ConfigurationError(
      `AWS STS rejected this job's GitHub OIDC token for ${settings.roleArn} (${name}: ` +
        `${message}). Account ${account} needs an IAM OIDC identity provider for ${issuer} ` +
        `whose audiences (client ids) include "${claims.aud ?? settings.audience}" (the ` +
        `'audience' input; ${DEFAULT_AWS_AUDIENCE} unless changed).`,
    );
  }
  if (name === 'ExpiredToken') {
    return new Error(`AWS STS found the GitHub OIDC token expired (${message}). Run again.`);
  }
  return new Error(
    `Could not assume ${settings.roleArn} with GitHub OIDC: ${name ? `${name}: ` : ''}${message}`,
  );
}
