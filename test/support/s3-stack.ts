import { spawn, type ChildProcess } from 'node:child_process';
import * as path from 'node:path';
import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';
import { GithubOidcServer, type GithubOidcOptions } from '../servers/github-oidc';
import { S3IamGateway } from '../servers/s3-iam';
import { StsServer, type IamRole } from '../servers/sts';
import { freePort, stopChild } from './ports';
import { localTls } from './tls';

export const AWS_ACCOUNT = '123456789012';
export const S3_REGION = 'eu-west-1';
/** May read objects and list the bucket: what the README tells users to grant. */
export const READER_ROLE = `arn:aws:iam::${AWS_ACCOUNT}:role/fetch-model`;
/** Trusts the repository but may only list: reads are AccessDenied. */
export const LIST_ONLY_ROLE = `arn:aws:iam::${AWS_ACCOUNT}:role/list-only`;
/** May read current objects but not versions (no s3:GetObjectVersion). */
export const NO_VERSIONS_ROLE = `arn:aws:iam::${AWS_ACCOUNT}:role/no-versions`;
/** Trusts only another repository. */
export const OTHER_REPO_ROLE = `arn:aws:iam::${AWS_ACCOUNT}:role/other-repo`;

const GITHUB_ISSUER = 'https://token.actions.githubusercontent.com';

/**
 * fauxqs, an S3-compatible server from npm (in memory), as a child process on 127.0.0.1. It
 * does not authenticate; the stack puts the IAM gateway in front of it.
 */
export class Fauxqs {
  private child?: ChildProcess;
  port = 0;

  get endpoint(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.port = await freePort();
    const main = path.join(__dirname, 'fauxqs-main.mjs');
    const child = spawn(process.execPath, [main, String(this.port)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    this.child = child;
    await new Promise<void>((resolve, reject) => {
      child.once('exit', (code) => reject(new Error(`fauxqs exited with ${code} while starting`)));
      child.stdout!.on('data', (chunk: Buffer) => {
        if (chunk.toString().includes('listening')) resolve();
      });
    });
    return this;
  }

  async stop(): Promise<void> {
    await stopChild(this.child);
  }

  /** A client straight to the server, for fixtures (never given to the action). */
  client(): S3Client {
    return new S3Client({
      endpoint: this.endpoint,
      region: S3_REGION,
      forcePathStyle: true,
      credentials: { accessKeyId: 'fixtures', secretAccessKey: 'fixtures' },
    });
  }
}

/**
 * The embedded stack for fetch-model from S3: the GitHub OIDC issuer double, an STS double
 * whose roles trust it for this repository, and fauxqs behind the IAM gateway, which accepts
 * exactly the credentials STS issued, for what each role's policy allows.
 */
export class S3Stack {
  readonly oidc: GithubOidcServer;
  readonly s3 = new Fauxqs();
  readonly sts: StsServer;
  /** The buckets' region (the fixtures' client and fauxqs ignore it; the gateway does not). */
  readonly region: string;
  gateway!: S3IamGateway;
  private readonly ownsOidc: boolean;

  /** Given an `oidc` issuer, it uses that one and leaves starting and stopping it to its owner. */
  constructor(
    oidcOptions: GithubOidcOptions = {},
    options: { region?: string; oidc?: GithubOidcServer } = {},
  ) {
    this.ownsOidc = !options.oidc;
    this.oidc = options.oidc ?? new GithubOidcServer(oidcOptions);
    this.region = options.region ?? S3_REGION;
    const trusting = (arn: string, allow: string[]): IamRole => ({
      arn,
      audience: 'sts.amazonaws.com',
      subject: 'repo:octo-org/ai-app:*',
      allow,
    });
    this.sts = new StsServer({
      tls: localTls(),
      trustedKeys: () => this.oidc.jwks,
      oidcProviders: [{ issuer: GITHUB_ISSUER, clientIds: ['sts.amazonaws.com'] }],
      roles: [
        trusting(READER_ROLE, ['s3:GetObject', 's3:GetObjectVersion', 's3:ListBucket']),
        trusting(LIST_ONLY_ROLE, ['s3:ListBucket']),
        trusting(NO_VERSIONS_ROLE, ['s3:GetObject', 's3:ListBucket']),
        { ...trusting(OTHER_REPO_ROLE, ['s3:GetObject']), subject: 'repo:octo-org/other:*' },
      ],
      onIssue: (credentials) => this.gateway.accept(credentials),
    });
  }

  async start(): Promise<this> {
    await Promise.all([this.ownsOidc && this.oidc.start(), this.sts.start(), this.s3.start()]);
    this.gateway = new S3IamGateway(new URL(this.s3.endpoint), {
      region: this.region,
      tls: localTls(),
    });
    await this.gateway.start();
    return this;
  }

  async stop(): Promise<void> {
    await Promise.all([
      this.ownsOidc && this.oidc.stop(),
      this.sts.stop(),
      this.gateway?.stop(),
      this.s3.stop(),
    ]);
  }

  async bucket(name: string): Promise<S3Client> {
    const client = this.s3.client();
    await client.send(new CreateBucketCommand({ Bucket: name })).catch((error: unknown) => {
      if ((error as { name?: string }).name !== 'BucketAlreadyOwnedByYou') throw error;
    });
    return client;
  }

  /** The S3 inputs a workflow would pass (none is a secret). */
  s3Inputs(bucket: string, roleArn = READER_ROLE): Record<string, string> {
    return {
      provider: 's3',
      bucket,
      region: this.region,
      'role-to-assume': roleArn,
      endpoint: this.gateway.endpoint,
    };
  }

  /** The job's environment: the OIDC endpoint, and STS's endpoint as AWS's variable sets it. */
  jobEnv(): Record<string, string> {
    return { ...this.oidc.jobEnv(), AWS_ENDPOINT_URL_STS: this.sts.endpoint };
  }
}
