import { randomUUID } from 'node:crypto';

/**
 * Event Grid deliveries as Azure Storage and Event Grid send them (shapes from the
 * Microsoft.Storage.BlobCreated and SubscriptionValidationEvent schemas), for the dispatcher's
 * tests and the demo. No storage account emits events here, so these are built by hand.
 */
export const ACCOUNT_ID =
  '/subscriptions/00000000-1111-2222-3333-444444444444/resourceGroups/ml-models/providers/Microsoft.Storage/storageAccounts/mlmodels';

export interface BlobCreatedOptions {
  blob: string;
  container?: string;
  accountId?: string;
  etag?: string;
  size?: number;
  api?: string;
  contentType?: string;
}

/** One BlobCreated event in the Event Grid schema. */
export function blobCreated(options: BlobCreatedOptions): Record<string, unknown> {
  const accountId = options.accountId ?? ACCOUNT_ID;
  const account = accountId.split('/').pop();
  const container = options.container ?? 'models';
  return {
    topic: accountId,
    subject: `/blobServices/default/containers/${container}/blobs/${options.blob}`,
    eventType: 'Microsoft.Storage.BlobCreated',
    id: randomUUID(),
    data: {
      api: options.api ?? 'PutBlockList',
      clientRequestId: randomUUID(),
      requestId: randomUUID(),
      eTag: options.etag ?? '0x8DC2B1D5E6F7A8B',
      contentType: options.contentType ?? 'application/octet-stream',
      contentLength: options.size ?? 104857600,
      blobType: 'BlockBlob',
      url: `https://${account}.blob.core.windows.net/${container}/${options.blob}`,
      sequencer: '00000000000000000000000000004E5F0000000000A1B2C3',
      storageDiagnostics: { batchId: randomUUID() },
    },
    dataVersion: '',
    metadataVersion: '1',
    eventTime: '2026-11-25T09:30:00.1234567Z',
  };
}

/** The same event in the CloudEvents 1.0 schema. */
export function asCloudEvent(event: Record<string, unknown>): Record<string, unknown> {
  return {
    specversion: '1.0',
    type: event.eventType,
    source: event.topic,
    id: event.id,
    time: event.eventTime,
    subject: event.subject,
    data: event.data,
    datacontenttype: 'application/json',
  };
}

/** The subscription validation event Event Grid POSTs when a subscription is created. */
export function validationEvent(
  accountId = ACCOUNT_ID,
  code: string = randomUUID(),
): Record<string, unknown> {
  return {
    id: randomUUID(),
    topic: accountId,
    subject: '',
    data: {
      validationCode: code,
      validationUrl: `https://rp-eastus2.eventgrid.azure.net:553/eventsubscriptions/models/validate?id=${code}&t=2026-11-25T09:30:00Z&apiVersion=2022-06-15&token=abc`,
    },
    eventType: 'Microsoft.EventGrid.SubscriptionValidationEvent',
    eventTime: '2026-11-25T09:30:00.0000000Z',
    metadataVersion: '1',
    dataVersion: '2',
  };
}
