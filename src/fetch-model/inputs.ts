import * as path from 'node:path';
import { accountEndpoint, cloudByName } from '../common/clouds';
import {
  checkRoleArn,
  checkRoleSessionName,
  DEFAULT_AWS_AUDIENCE,
  type AwsWebIdentitySettings,
} from '../common/aws-credentials';
import { readAzureIdentity, type AzureIdentitySettings } from '../common/credential';
import { ConfigurationError, quote } from '../common/errors';
import { requireSecureEndpoint, type Inputs } from '../common/inputs';
import type { Logger } from '../common/logger';
import { parseBlobSpec, parseExpectedDigests, type BlobSpec } from './specs';

export const VERIFY_MD5_MODES = ['auto', 'required', 'off'] as const;
export type VerifyMd5 = (typeof VERIFY_MD5_MODES)[number];

export const PROVIDERS = ['azure-blob', 's3'] as const;
export type Provider = (typeof PROVIDERS)[number];

/** Where the model is on Azure Blob Storage, and how to sign in there. */
export interface AzureBlobSettings {
  provider: 'azure-blob';
  /** The account's blob endpoint, from storage-account (and cloud) or blob-endpoint. */
  endpoint: URL;
  /** Container holding the model. */
  container: string;
  /** SAS query string (no leading '?') used instead of OIDC; already masked. */
  sasToken?: string;
  /** Azure sign-in by OIDC, used when there is no SAS. */
  identity: AzureIdentitySettings;
}

/** Where the model is on Amazon S3 (or an S3-compatible store), and how to sign in there. */
export interface S3Settings {
  provider: 's3';
  /** Bucket holding the model. */
  bucket: string;
  /** An S3-compatible endpoint, addressed path-style; AWS's regional endpoint when unset. */
  endpoint?: URL;
  /** The role to assume with GitHub OIDC, the session name, audience, region and STS endpoint. */
  identity: AwsWebIdentitySettings;
}

/** Everything action-fetch-model was asked to do, checked and typed. */
export interface FetchSettings {
  /** The store holding the model (the `provider` input picks which) and its sign-in. */
  store: AzureBlobSettings | S3Settings;
  /** Named blobs (each optionally pinned), or every blob under a prefix. */
  source: { kind: 'blobs'; specs: BlobSpec[] } | { kind: 'prefix'; prefix: string };
  /** Destination directory, absolute. */
  destination: string;
  /** Expected SHA-256 per blob name or relative path, lower-case hex. */
  expectedSha256: Map<string, string>;
  /** Whether to check the MD5 the service stores (Content-MD5, or an S3 single-part ETag). */
  verifyMd5: VerifyMd5;
  /** Ranged GETs in flight at once, across all files. */
  concurrency: number;
  /** Bytes per ranged GET. */
  blockSize: number;
}

const CONTAINER = /^(\$root|\$web|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$/;
const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
const AWS_REGION = /^[a-z]{2}(-[a-z]+)+-\d+$/;
const MiB = 1024 * 1024;

/** Inputs that belong to one provider only; setting them for the other is a mistake. */
const AZURE_ONLY = [
  'storage-account',
  'blob-endpoint',
  'container',
  'sas-token',
  'client-id',
  'tenant-id',
  'cloud',
  'authority-host',
];
const S3_ONLY = ['bucket', 'region', 'role-to-assume', 'role-session-name', 'endpoint'];

export function readSettings(
  inputs: Inputs,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): FetchSettings {
  // A SAS is masked before anything else is read, so no later error can print it.
  const rawSas = inputs.optional('sas-token');
  if (rawSas !== undefined) maskSas(rawSas, logger);
  const provider = inputs.choice('provider', PROVIDERS, 'azure-blob');
  const store = provider === 's3' ? readS3(inputs, env, logger) : readAzure(inputs, env, logger);

  const blobs = inputs.list('blobs');
  const prefix = inputs.optional('prefix');
  if (blobs.length > 0 && prefix !== undefined) {
    throw new ConfigurationError(
      "Set either 'blobs' (blob names) or 'prefix' (a folder), not both.",
    );
  }
  if (blobs.length === 0 && prefix === undefined) {
    throw new ConfigurationError(
      "Input 'blobs' or 'prefix' is required: blob names such as 'ResNet_152.model, synset.txt', " +
        "or a folder such as 'models/resnet/'.",
    );
  }
  let source: FetchSettings['source'];
  if (prefix !== undefined) {
    source = { kind: 'prefix', prefix: prefix.endsWith('/') ? prefix : `${prefix}/` };
  } else {
    const specs = blobs.map((entry) => parseBlobSpec(entry, provider));
    const seen = new Set<string>();
    for (const spec of specs) {
      if (seen.has(spec.name)) {
        throw new ConfigurationError(`Blob ${quote(spec.name)} is listed twice in 'blobs'.`);
      }
      seen.add(spec.name);
    }
    source = { kind: 'blobs', specs };
  }

  return {
    store,
    source,
    destination: path.resolve(inputs.string('path', 'model')),
    expectedSha256: parseExpectedDigests(inputs.lines('sha256')),
    verifyMd5: inputs.choice('verify-md5', VERIFY_MD5_MODES, 'auto'),
    concurrency: inputs.integer('concurrency', 8, 1, 64),
    blockSize: inputs.byteSize('block-size', 8 * MiB, 256 * 1024, 256 * MiB),
  };
}

/** Fails when an input of the other provider is set: it would be silently ignored otherwise. */
function refuseOtherProvider(inputs: Inputs, names: string[], provider: Provider): void {
  for (const name of names) {
    if (inputs.optional(name) === undefined) continue;
    const hint =
      provider === 's3'
        ? "it is an Azure Blob input; for S3 use 'bucket', 'region' and 'role-to-assume'"
        : "it is an S3 input; set 'provider: s3' to fetch from S3";
    throw new ConfigurationError(
      `Input '${name}' does not apply to provider '${provider}': ${hint}.`,
    );
  }
}

function readAzure(inputs: Inputs, env: NodeJS.ProcessEnv, logger: Logger): AzureBlobSettings {
  refuseOtherProvider(inputs, S3_ONLY, 'azure-blob');
  const rawSas = inputs.optional('sas-token');
  const sasToken = rawSas === undefined ? undefined : rawSas.replace(/^\?/, '');
  const identity = readAzureIdentity(inputs, env);

  const account = inputs.optional('storage-account');
  const blobEndpoint = inputs.optional('blob-endpoint');
  if (account !== undefined && blobEndpoint !== undefined) {
    throw new ConfigurationError(
      "Set either 'storage-account' (an account name) or 'blob-endpoint' (a full URL), not both.",
    );
  }
  if (account === undefined && blobEndpoint === undefined) {
    throw new ConfigurationError(
      "Input 'storage-account' or 'blob-endpoint' is required: the account name, e.g. " +
        "'mymodels', or its blob endpoint URL, e.g. 'https://mymodels.blob.core.windows.net'.",
    );
  }
  const endpoint =
    account !== undefined
      ? accountEndpoint(account, cloudByName(identity.cloud.name).storageSuffix)
      : parseEndpoint(blobEndpoint!, logger);

  const container = inputs.required(
    'container',
    "the blob container that holds the model, e.g. 'models'",
  );
  if (!CONTAINER.test(container)) {
    throw new ConfigurationError(
      `Invalid container ${quote(container)}. Expected 3 to 63 lowercase letters, digits and ` +
        `single hyphens, starting with a letter or digit.`,
    );
  }
  return { provider: 'azure-blob', endpoint, container, sasToken, identity };
}

function readS3(inputs: Inputs, env: NodeJS.ProcessEnv, logger: Logger): S3Settings {
  refuseOtherProvider(inputs, AZURE_ONLY, 's3');
  const bucket = inputs.required('bucket', "the S3 bucket that holds the model, e.g. 'my-models'");
  if (!BUCKET.test(bucket) || bucket.includes('..')) {
    throw new ConfigurationError(
      `Invalid bucket ${quote(bucket)}. Expected the bucket name (not an s3:// URL or ARN): 3 ` +
        `to 63 lowercase letters, digits, dots and hyphens, starting and ending with a letter ` +
        `or digit.`,
    );
  }
  const rawEndpoint = inputs.optional('endpoint');
  const endpoint =
    rawEndpoint === undefined ? undefined : parseUrl('endpoint', rawEndpoint, logger);
  const region =
    inputs.optional('region') ?? nonEmpty(env.AWS_REGION) ?? nonEmpty(env.AWS_DEFAULT_REGION);
  if (region === undefined) {
    throw new ConfigurationError(
      "Input 'region' is required for provider 's3': the bucket's AWS region, e.g. " +
        "'eu-west-1' (or set AWS_REGION).",
    );
  }
  // S3-compatible stores name their regions freely; AWS's follow one pattern.
  if (endpoint === undefined ? !AWS_REGION.test(region) : !/^[a-z0-9-]{1,32}$/.test(region)) {
    throw new ConfigurationError(
      `Invalid region ${quote(region)}. Expected an AWS region code such as us-east-1 or ` +
        `eu-central-1.`,
    );
  }
  const roleArn = checkRoleArn(
    inputs.required(
      'role-to-assume',
      "the ARN of the IAM role that trusts GitHub's OIDC provider for this repository, e.g. " +
        "'arn:aws:iam::123456789012:role/fetch-model'",
    ),
  );
  const roleSessionName = checkRoleSessionName(inputs.string('role-session-name', 'fetch-model'));
  const rawSts = nonEmpty(env.AWS_ENDPOINT_URL_STS);
  return {
    provider: 's3',
    bucket,
    endpoint,
    identity: {
      roleArn,
      roleSessionName,
      audience: inputs.string('audience', DEFAULT_AWS_AUDIENCE),
      region,
      stsEndpoint:
        rawSts === undefined ? undefined : parseUrl('AWS_ENDPOINT_URL_STS', rawSts, logger),
    },
  };
}

function nonEmpty(value: string | undefined): string | undefined {
  return value && value.trim() !== '' ? value.trim() : undefined;
}

/** An https URL for an S3 or STS endpoint: credentials never travel in clear. */
function parseUrl(name: string, value: string, logger: Logger): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigurationError(
      `Invalid ${name} ${quote(value)}. Expected an https URL such as https://s3.example.com.`,
    );
  }
  if (url.search) {
    logger.mask(url.search.slice(1));
    throw new ConfigurationError(`${name} must not carry a query string.`);
  }
  if (url.protocol !== 'https:') {
    throw new ConfigurationError(
      `Invalid ${name} ${quote(value)}. Expected an https:// URL: requests carry temporary ` +
        `credentials, which must not travel in clear.`,
    );
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

function parseEndpoint(value: string, logger: Logger): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new ConfigurationError(
      `Invalid blob-endpoint ${quote(value)}. Expected a URL such as ` +
        `https://mymodels.blob.core.windows.net or https://127.0.0.1:10000/devstoreaccount1.`,
    );
  }
  if (url.search) {
    logger.mask(url.search.slice(1));
    throw new ConfigurationError(
      "blob-endpoint must not carry a query string. Pass a SAS with 'sas-token' instead, or " +
        'nothing to sign in with OIDC.',
    );
  }
  requireSecureEndpoint('blob-endpoint', url, 'https://mymodels.blob.core.windows.net');
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

/** Masks a SAS and its signature, in every form a log line could show them. */
function maskSas(raw: string, logger: Logger): void {
  const token = raw.replace(/^\?/, '');
  logger.mask(raw);
  logger.mask(token);
  const signature = new URLSearchParams(token).get('sig');
  if (!signature) {
    throw new ConfigurationError(
      "Invalid sas-token: expected a SAS query string such as 'sv=...&sp=r&sig=...' " +
        '(with or without the leading ?), containing a sig parameter.',
    );
  }
  logger.mask(signature);
  logger.mask(encodeURIComponent(signature));
}
