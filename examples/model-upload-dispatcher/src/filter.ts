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
  const etag = typeof data.eTag === 'string' ? data.eTag.replace(/^"(.*)"$/, '$1') : '';
  if (!etag) return { action: 'ignore', reason: `event for ${location.blob} carries no eTag` };
  const size = Number(data.contentLength);
  return {
    action: 'dispatch',
    payload: {
      blob: location.blob,
      container: location.container,
      url: typeof data.url === 'string' ? data.url : '',
      etag,
      size: Number.isFinite(size) ? size : 0,
      content_type: typeof data.contentType === 'string' ? data.contentType : '',
      storage_account: settings.storageAccountId.split('/').pop() ?? '',
      event_id: event.id,
      event_time: event.time,
    },
  };
}
