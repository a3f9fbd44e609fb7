import { ConfigurationError, quote } from './errors';

/*
 * The AWS sign-in settings and their checks, apart from aws-credentials.ts so that reading
 * inputs does not load the AWS SDK (about 0.25 s of CPU) in a run that never talks to AWS.
 */

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

