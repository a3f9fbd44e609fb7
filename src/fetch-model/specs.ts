import { ConfigurationError, quote } from '../common/errors';

/** How a blob entry is pinned to one exact content. */
export type Pin =
  | { kind: 'version'; value: string }
  | { kind: 'snapshot'; value: string }
  | { kind: 'etag'; value: string };

/** One entry of the `blobs` input: a blob name and an optional pin. */
export interface BlobSpec {
  name: string;
  pin?: Pin;
}

/** Which store the names are for: it decides which pins exist and what a version id looks like. */
export type PinRules = 'azure-blob' | 's3';

/**
 * Parses `NAME`, `NAME@version=<id>`, `NAME@snapshot=<time>` or `NAME@etag=<etag>`. The pin is
 * the text after the last `@` that is followed by a known `kind=`, so names may contain `@`.
 * Azure version ids and snapshots are timestamps; S3 version ids are opaque strings, and S3 has
 * no snapshots.
 */
export function parseBlobSpec(entry: string, rules: PinRules = 'azure-blob'): BlobSpec {
  const match = /^(.*)@(version|snapshot|etag)=(.*)$/i.exec(entry);
  if (!match) {
    if (/@[a-z-]+=/i.test(entry)) {
      const kind = /@([a-z-]+)=/i.exec(entry)![1];
      throw new ConfigurationError(
        `Invalid pin '@${kind}=' in blobs entry ${quote(entry)}. Expected NAME, ` +
          `NAME@version=<versionId>, NAME@snapshot=<snapshot> or NAME@etag=<etag>.`,
      );
    }
    return { name: checkName(entry.trim(), entry) };
  }
  const name = checkName(match[1].trim(), entry);
  const kind = match[2].toLowerCase() as Pin['kind'];
  const value = match[3].trim().replace(/^"(.*)"$/, '$1');
  if (value === '') {
    throw new ConfigurationError(
      `Empty ${kind} in blobs entry ${quote(entry)}. Expected NAME@${kind}=<${kind}>.`,
    );
  }
  if (rules === 's3') {
    if (kind === 'snapshot') {
      throw new ConfigurationError(
        `S3 has no snapshots: ${quote(entry)}. Pin an object version with ` +
          `NAME@version=<versionId>, or its content with NAME@etag=<etag>.`,
      );
    }
    if (kind === 'version' && !/^[\x21-\x7e]{1,1024}$/.test(value)) {
      throw new ConfigurationError(
        `Invalid version ${quote(value)} in blobs entry ${quote(entry)}. Expected an S3 ` +
          `version id, e.g. 3HL4kqtJlcpXroDTDmJ.rmSpXd3dIbrHY, as 'aws s3api list-object-versions' ` +
          `shows it.`,
      );
    }
  } else if (kind === 'snapshot' || kind === 'version') {
    // Both are timestamps such as 2024-05-01T10:20:30.1234567Z.
    if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,7})?Z$/.test(value)) {
      throw new ConfigurationError(
        `Invalid ${kind} ${quote(value)} in blobs entry ${quote(entry)}. Expected a ` +
          `timestamp such as 2024-05-01T10:20:30.1234567Z.`,
      );
    }
  }
  return { name, pin: { kind, value } };
}

function checkName(name: string, entry: string): string {
  if (name === '') {
    throw new ConfigurationError(`Missing blob name in blobs entry ${quote(entry)}.`);
  }
  if (name.length > 1024) {
    throw new ConfigurationError(`Blob name ${quote(name)} is longer than 1024 characters.`);
  }
  return name;
}

/** Compares ETags the way users write them: with or without the surrounding quotes. */
export function sameEtag(a: string, b: string): boolean {
  return unquoteEtag(a) === unquoteEtag(b);
}

/**
 * The ETag as HTTP headers carry it, in double quotes. List Blobs returns ETags bare, HEAD
 * quoted; outputs and If-Match headers use one form whichever call found the blob.
 */
export function quoteEtag(etag: string): string {
  return etag === '' || /^(W\/)?".*"$/.test(etag) ? etag : `"${etag}"`;
}

export function unquoteEtag(etag: string): string {
  return etag.replace(/^W\//, '').replace(/^"(.*)"$/, '$1');
}

/** Parses `sha256` lines of `NAME=HEX` into a map. */
export function parseExpectedDigests(lines: string[]): Map<string, string> {
  const digests = new Map<string, string>();
  for (const line of lines) {
    const match = /^(.+?)\s*[=:]\s*([0-9a-fA-F]{64})$/.exec(line);
    if (!match) {
      throw new ConfigurationError(
        `Invalid sha256 line ${quote(line)}. Expected NAME=HEX with a 64-character hex digest.`,
      );
    }
    digests.set(match[1].trim(), match[2].toLowerCase());
  }
  return digests;
}
