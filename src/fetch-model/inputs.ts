import * as path from 'node:path';
import { cloudByName } from '../common/clouds';
import { readAzureIdentity, type AzureIdentitySettings } from '../common/credential';
import { ConfigurationError, quote } from '../common/errors';
import type { Inputs } from '../common/inputs';
import type { Logger } from '../common/logger';
import { accountEndpoint } from './azure-blob';
import { parseBlobSpec, parseExpectedDigests, type BlobSpec } from './specs';

export const VERIFY_MD5_MODES = ['auto', 'required', 'off'] as const;
export type VerifyMd5 = (typeof VERIFY_MD5_MODES)[number];

/** Everything action-fetch-model was asked to do, checked and typed. */
export interface FetchSettings {
  /** The account's blob endpoint, from storage-account (and cloud) or blob-endpoint. */
  endpoint: URL;
  /** Container holding the model. */
  container: string;
  /** Named blobs (each optionally pinned), or every blob under a prefix. */
  source: { kind: 'blobs'; specs: BlobSpec[] } | { kind: 'prefix'; prefix: string };
  /** Destination directory, absolute. */
  destination: string;
  /** Expected SHA-256 per blob name or relative path, lower-case hex. */
  expectedSha256: Map<string, string>;
  /** Whether to check the service's Content-MD5. */
  verifyMd5: VerifyMd5;
  /** Ranged GETs in flight at once, across all files. */
  concurrency: number;
  /** Bytes per ranged GET. */
  blockSize: number;
  /** SAS query string (no leading '?') used instead of OIDC; already masked. */
  sasToken?: string;
  /** Azure sign-in by OIDC, used when there is no SAS. */
  identity: AzureIdentitySettings;
}

const CONTAINER = /^(\$root|\$web|[a-z0-9](?:[a-z0-9]|-(?=[a-z0-9])){2,62})$/;
const MiB = 1024 * 1024;

export function readSettings(
  inputs: Inputs,
  env: NodeJS.ProcessEnv,
  logger: Logger,
): FetchSettings {
  // The SAS is masked before anything else is read, so no later error can print it.
  const sasToken = readSasToken(inputs.optional('sas-token'), logger);
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
    const specs = blobs.map(parseBlobSpec);
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
    endpoint,
    container,
    source,
    destination: path.resolve(inputs.string('path', 'model')),
    expectedSha256: parseExpectedDigests(inputs.lines('sha256')),
    verifyMd5: inputs.choice('verify-md5', VERIFY_MD5_MODES, 'auto'),
    concurrency: inputs.integer('concurrency', 8, 1, 64),
    blockSize: inputs.byteSize('block-size', 8 * MiB, 256 * 1024, 256 * MiB),
    sasToken,
    identity,
  };
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
  if (url.protocol !== 'https:' && url.protocol !== 'http:') {
    throw new ConfigurationError(
      `Invalid blob-endpoint ${quote(value)}. Expected an https:// (or http://) URL.`,
    );
  }
  url.pathname = url.pathname.replace(/\/+$/, '');
  return url;
}

function readSasToken(raw: string | undefined, logger: Logger): string | undefined {
  if (raw === undefined) return undefined;
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
  return token;
}
