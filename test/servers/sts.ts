import { randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { verifyJwt } from './jwt';
import { closeServer, listenOnLoopback } from '../support/ports';

/** An IAM OIDC identity provider: the issuer it trusts and the audiences (client ids) it accepts. */
export interface OidcProvider {
  /** `https://token.actions.githubusercontent.com` */
  issuer: string;
  clientIds: string[];
}

/** What a role's trust policy and permissions policy say, reduced to what these tests use. */
export interface IamRole {
  arn: string;
  /** `token.actions.githubusercontent.com:aud`, StringEquals. */
  audience: string;
  /** `token.actions.githubusercontent.com:sub`, StringLike (`*` and `?` wildcards). */
  subject: string;
  /** Actions its permissions policy allows, e.g. s3:GetObject, s3:ListBucket. */
  allow: string[];
}

/** Temporary credentials as STS issued them, with the session they belong to. */
export interface IssuedCredentials {
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken: string;
  expiration: Date;
  role: IamRole;
  /** arn:aws:sts::<account>:assumed-role/<role name>/<session name> */
  assumedRoleArn: string;
}

export interface StsOptions {
  oidcProviders: OidcProvider[];
  roles: IamRole[];
  /** Where the issuer's signing keys come from (GitHub's JWKS). */
  trustedKeys: () => Array<Record<string, unknown>>;
  tls: { key: string; cert: string };
  /** Told of every set of credentials issued, so the S3 side can accept exactly those. */
  onIssue?: (credentials: IssuedCredentials) => void;
}

/**
 * A stand-in for AWS STS's AssumeRoleWithWebIdentity (query protocol: a form POST, an XML
 * answer). It verifies the web identity token's RS256 signature against the issuer's JWKS, its
 * lifetime, that an OIDC provider exists for its issuer with its audience as a client id, and
 * the role's trust policy conditions on `aud` and `sub`; then issues temporary credentials.
 * Errors carry STS's codes: InvalidIdentityToken, ExpiredTokenException, AccessDenied.
 */
export class StsServer {
  readonly issued: IssuedCredentials[] = [];
  readonly requests: Array<{ action: string; roleArn?: string; sessionName?: string }> = [];
  /** Lifetime of issued credentials, as DurationSeconds would set it (capped). */
  credentialLifetimeSeconds = 3600;
  private server?: https.Server;
  private port = 0;

  constructor(readonly options: StsOptions) {}

  get endpoint(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = https.createServer(this.options.tls, (req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (chunk: Buffer) => chunks.push(chunk));
      req.on('end', () => this.handle(req, Buffer.concat(chunks).toString('utf8'), res));
    });
    this.port = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private handle(req: http.IncomingMessage, body: string, res: http.ServerResponse): void {
    if (req.method !== 'POST') return stsError(res, 405, 'Sender', 'InvalidAction', 'POST only');
    const form = new URLSearchParams(body);
    const action = form.get('Action') ?? '';
    const roleArn = form.get('RoleArn') ?? undefined;
    const sessionName = form.get('RoleSessionName') ?? undefined;
    this.requests.push({ action, roleArn, sessionName });
    if (action !== 'AssumeRoleWithWebIdentity' || form.get('Version') !== '2011-06-15') {
      return stsError(res, 400, 'Sender', 'InvalidAction', `Could not find operation ${action}`);
    }
    const token = form.get('WebIdentityToken') ?? '';
    if (!roleArn || !sessionName || !token) {
      return stsError(
        res,
        400,
        'Sender',
        'MissingParameter',
        'RoleArn, RoleSessionName and WebIdentityToken are required',
      );
    }
    const verified = verifyJwt(token, this.options.trustedKeys());
    if ('error' in verified) {
      return stsError(
        res,
        400,
        'Sender',
        'InvalidIdentityToken',
        `Couldn't verify the token signature (${verified.error})`,
      );
    }
    const claims = verified.claims as {
      iss?: string;
      aud?: string;
      sub?: string;
      exp?: number;
      nbf?: number;
    };
    const now = Math.floor(Date.now() / 1000);
    if (typeof claims.exp !== 'number' || claims.exp <= now) {
      return stsError(
        res,
        400,
        'Sender',
        'ExpiredTokenException',
        `Token expired: current date/time ${now} must be before the expiration date/time ${claims.exp}`,
      );
    }
    const provider = this.options.oidcProviders.find(
      (candidate) => candidate.issuer === claims.iss,
    );
    if (!provider) {
      return stsError(
        res,
        400,
        'Sender',
        'InvalidIdentityToken',
        `No OpenIDConnect provider found in your account for ${claims.iss}`,
      );
    }
    if (!claims.aud || !provider.clientIds.includes(claims.aud)) {
      return stsError(res, 400, 'Sender', 'InvalidIdentityToken', 'Incorrect token audience');
    }
    const role = this.options.roles.find((candidate) => candidate.arn === roleArn);
    // STS does not say which condition failed, nor whether the role exists.
    if (!role || role.audience !== claims.aud || !stringLike(role.subject, claims.sub ?? '')) {
      return stsError(
        res,
        403,
        'Sender',
        'AccessDenied',
        'Not authorized to perform sts:AssumeRoleWithWebIdentity',
      );
    }
    const [, account, roleName] = /^arn:aws:iam::(\d{12}):role\/(?:.*\/)?([^/]+)$/.exec(role.arn)!;
    const credentials: IssuedCredentials = {
      accessKeyId: `ASIA${randomBytes(8).toString('hex').toUpperCase()}`,
      secretAccessKey: randomBytes(30).toString('base64'),
      sessionToken: randomBytes(96).toString('base64'),
      expiration: new Date(Date.now() + this.credentialLifetimeSeconds * 1000),
      role,
      assumedRoleArn: `arn:aws:sts::${account}:assumed-role/${roleName}/${sessionName}`,
    };
    this.issued.push(credentials);
    this.options.onIssue?.(credentials);
    xml(
      res,
      200,
      `<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <SubjectFromWebIdentityToken>${escapeXml(claims.sub ?? '')}</SubjectFromWebIdentityToken>
    <Audience>${escapeXml(claims.aud)}</Audience>
    <AssumedRoleUser>
      <Arn>${credentials.assumedRoleArn}</Arn>
      <AssumedRoleId>AROA${randomBytes(8).toString('hex').toUpperCase()}:${escapeXml(sessionName)}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <SessionToken>${credentials.sessionToken}</SessionToken>
      <SecretAccessKey>${credentials.secretAccessKey}</SecretAccessKey>
      <Expiration>${credentials.expiration.toISOString()}</Expiration>
      <AccessKeyId>${credentials.accessKeyId}</AccessKeyId>
    </Credentials>
    <Provider>${escapeXml(provider.issuer.replace(/^https:\/\//, ''))}</Provider>
  </AssumeRoleWithWebIdentityResult>
  <ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata>
</AssumeRoleWithWebIdentityResponse>`,
    );
  }
}

/** IAM's StringLike: `*` matches any run of characters, `?` any one; case-sensitive. */
export function stringLike(pattern: string, value: string): boolean {
  const regex = pattern
    .replace(/[.+^${}()|[\]\\]/g, '\\$&')
    .replace(/\*/g, '.*')
    .replace(/\?/g, '.');
  return new RegExp(`^${regex}$`).test(value);
}

function stsError(
  res: http.ServerResponse,
  status: number,
  type: string,
  code: string,
  message: string,
): void {
  xml(
    res,
    status,
    `<ErrorResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <Error><Type>${type}</Type><Code>${code}</Code><Message>${escapeXml(message)}</Message></Error>
  <RequestId>${randomUUID()}</RequestId>
</ErrorResponse>`,
  );
}

function xml(res: http.ServerResponse, status: number, body: string): void {
  res.writeHead(status, { 'content-type': 'text/xml', 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

export function escapeXml(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => `&#${c.charCodeAt(0)};`);
}
