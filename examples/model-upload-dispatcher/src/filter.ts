import { BLOB_CREATED, blobOfSubject, type GridEvent } from './events';
import type { DispatcherSettings } from './settings';

/**
 * The repository_dispatch client_payload for one uploaded blob. GitHub allows at most 10
 * top-level properties; the caller workflow pins the build to this exact content with
 * fetch-model's `blobs: <blob>@etag=<etag>`.
 */
export interface ModelUploadedPayload {
  /** Blob name inside the container, e.g. resnet/v3/model.onnx. */
  blob: string;
  container: string;
  /** The blob's URL as Event Grid reported it. */
  url: string;
  /** The ETag of the content that was uploaded (without quotes). */
  etag: string;
  /** Size in bytes. */
  size: number;
  content_type: string;
  /** The storage account's name. */
  storage_account: string;
  /** Event Grid's event id and time, for tracing a run back to the upload. */
  event_id: string;
  event_time: string;
}

/**
 * An Azure Storage ETag as Event Grid and the Blob service send it: `0x` and hex digits
 * (0x8DC2B1D5E6F7A8B), bare or in double quotes. Anything else, a newline above all, never
 * reaches the payload: the caller workflow writes the ETag into its outputs.
 */
const AZURE_ETAG = /^"?(0x[0-9A-Fa-f]{8,32})"?$/;
/**
 * The blob names dispatched: path segments of letters, digits, `.`, `_` and `-` separated by
 * single slashes, at most 1024 characters, no `.`/`..` segment. Stricter than Azure (which
 * allows almost anything) because the name travels into fetch-model's `blobs` input, where a
 * newline, comma or `@` would add or pin another blob.
 */
const SAFE_BLOB_NAME =
  /^(?!.{1025})[A-Za-z0-9_-][A-Za-z0-9._-]*(?:\/[A-Za-z0-9_-][A-Za-z0-9._-]*)*$/;

/** The bare ETag when `value` is one in Azure's format, else undefined. */
export function azureEtag(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const match = AZURE_ETAG.exec(value);
  // Quotes come in pairs or not at all.
  if (!match || value.startsWith('"') !== value.endsWith('"')) return undefined;
  return match[1];
}

export function isSafeBlobName(name: string): boolean {
  return SAFE_BLOB_NAME.test(name) && !name.split('/').some((segment) => /^\.+$/.test(segment));
}

export type Decision =
  { action: 'dispatch'; payload: ModelUploadedPayload } | { action: 'ignore'; reason: string };

/** Does the event come from the configured storage account? (ARM ids compare case-insensitively.) */
export function fromConfiguredAccount(
  event: { topic: string },
  settings: DispatcherSettings,
): boolean {
  return event.topic.toLowerCase() === settings.storageAccountId;
}

/**
 * Decides what to do with one event from the configured account: dispatch a finished blob in
 * the models container under the prefix, ignore everything else (with the reason, for the log).
 */
export function decide(event: GridEvent, settings: DispatcherSettings): Decision {
  if (event.type !== BLOB_CREATED) return { action: 'ignore', reason: `event type ${event.type}` };
  const location = blobOfSubject(event.subject);
  if (!location) return { action: 'ignore', reason: `subject ${event.subject} names no blob` };
  if (location.container !== settings.container) {
    return {
      action: 'ignore',
      reason: `container ${location.container}, not ${settings.container}`,
    };
  }
  if (!location.blob.startsWith(settings.prefix)) {
    return {
      action: 'ignore',
      reason: `blob ${location.blob} is outside prefix ${settings.prefix}`,
    };
  }
  if (location.blob.endsWith('/')) {
    return { action: 'ignore', reason: `blob ${location.blob} is a folder marker` };
  }
  const data = event.data;
  // On a Data Lake (hierarchical namespace) account CreateFile announces an empty file; the
  // content arrives with FlushWithClose, which raises its own BlobCreated.
  if (data.api === 'CreateFile') {
    return {
      action: 'ignore',
      reason: `blob ${location.blob} was only created empty (CreateFile)`,
    };
  }
  if (!isSafeBlobName(location.blob)) {
    return {
      action: 'ignore',
      reason: `blob name ${JSON.stringify(location.blob)} is outside the accepted characters (letters, digits, . _ - and single slashes)`,
    };
  }
  const etag = azureEtag(data.eTag);
  if (!etag) {
    return {
      action: 'ignore',
      reason: `event for ${location.blob} carries no Azure ETag (0x followed by hex digits): ${JSON.stringify(data.eTag)}`,
    };
  }
  const size = Number(data.contentLength);
  return {
    action: 'dispatch',
    payload: {
      blob: location.blob,
      container: location.container,
      // Informational fields pass only in their documented shapes; the caller never runs them.
      url:
        typeof data.url === 'string' && /^https:\/\/[^\s"'<>\\]+$/.test(data.url) ? data.url : '',
      etag,
      size: Number.isFinite(size) ? size : 0,
      content_type:
        typeof data.contentType === 'string' &&
        /^[\w.+-]+\/[\w.+-]+(?:; ?[\w.+-]+=[\w.+"-]+)*$/.test(data.contentType)
          ? data.contentType
          : '',
      storage_account: settings.storageAccountId.split('/').pop() ?? '',
      event_id: event.id,
      event_time: event.time,
    },
  };
}
