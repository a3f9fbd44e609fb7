import {
  AssumeRoleWithWebIdentityCommand,
  STSClient,
  type AssumeRoleWithWebIdentityCommandOutput,
} from '@aws-sdk/client-sts';
import { DEFAULT_AWS_AUDIENCE, type AwsWebIdentitySettings } from './aws-identity';
import type { IdTokenProvider } from './credential';
import { ConfigurationError, errorMessage } from './errors';
import type { Logger } from './logger';

/** Temporary credentials of the assumed role. */
export interface AwsCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration?: Date;
}

/** The part of STS the credential source uses; the SDK's STSClient in the action. */
export interface StsApi {
  send(command: AssumeRoleWithWebIdentityCommand): Promise<AssumeRoleWithWebIdentityCommandOutput>;
}

export function createStsClient(settings: AwsWebIdentitySettings): StsApi {
  return new STSClient({
    region: settings.region,
    endpoint: settings.stsEndpoint?.toString(),
    // AssumeRoleWithWebIdentity is an unsigned call: no credentials are looked up for it.
    maxAttempts: 4,
  });
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
    let output: AssumeRoleWithWebIdentityCommandOutput;
    try {
      output = await this.sts.send(
        new AssumeRoleWithWebIdentityCommand({
          RoleArn: this.settings.roleArn,
          RoleSessionName: this.settings.roleSessionName,
          WebIdentityToken: token,
          DurationSeconds: 3600,
        }),
      );
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
  // The SDK names modelled errors with an Exception suffix; AccessDenied is not modelled.
  const name = ((error as { name?: string }).name ?? '').replace(/Exception$/, '');
  const message = errorMessage(error);
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
  return new Error(`Could not assume ${settings.roleArn} with GitHub OIDC: ${name} ${message}`);
}
