import { randomBytes, randomUUID } from 'node:crypto';
import {
  EVENT_GRID_APP_ID,
  EVENT_GRID_ROLE,
  SETTING,
} from '../../examples/model-upload-dispatcher/src/settings';
import { EntraServer } from '../servers/entra';
import { TENANT_ID } from './stack';
import { localTls } from './tls';

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

/**
 * Event Grid's side of a webhook subscription with Entra authentication: an Entra double in
 * which Event Grid's application holds the AzureEventGridSecureWebhookSubscriber role on the
 * webhook's app registration (WEBHOOK_AUDIENCE), and another app of the tenant that does not.
 * `token()` signs in as Event Grid does before each delivery (client credentials for
 * `<audience>/.default`), over HTTPS.
 */
export const WEBHOOK_AUDIENCE = 'api://model-upload-dispatcher';
export const OTHER_APP_ID = '0c2f4b6a-8d1e-4f3a-9b5c-7e6d5c4b3a21';

export class EventGridEntra {
  readonly server: EntraServer;
  private readonly secrets: Record<string, string> = {
    [EVENT_GRID_APP_ID]: randomBytes(24).toString('base64url'),
    [OTHER_APP_ID]: randomBytes(24).toString('base64url'),
  };

  constructor() {
    this.server = new EntraServer({
      tenantId: TENANT_ID,
      tls: localTls(),
      trustedKeys: () => [],
      apps: [
        {
          clientId: EVENT_GRID_APP_ID,
          federatedCredentials: [],
          clientSecret: this.secrets[EVENT_GRID_APP_ID],
          appRoles: { [WEBHOOK_AUDIENCE]: [EVENT_GRID_ROLE] },
        },
        {
          clientId: OTHER_APP_ID,
          federatedCredentials: [],
          clientSecret: this.secrets[OTHER_APP_ID],
        },
      ],
    });
  }

  async start(): Promise<this> {
    await this.server.start();
    return this;
  }

  async stop(): Promise<void> {
    await this.server.stop();
  }

  /** The dispatcher's Entra app settings for this tenant and webhook. */
  settings(): Record<string, string> {
    return {
      [SETTING.entraTenantId]: TENANT_ID,
      [SETTING.entraAudience]: WEBHOOK_AUDIENCE,
      [SETTING.entraAuthorityHost]: this.server.authorityHost,
    };
  }

  /** An access token for `audience`, as the app `clientId` gets it from the token endpoint. */
  async token(audience = WEBHOOK_AUDIENCE, clientId = EVENT_GRID_APP_ID): Promise<string> {
    const response = await fetch(`${this.server.authorityHost}/${TENANT_ID}/oauth2/v2.0/token`, {
      method: 'POST',
      headers: { 'content-type': 'application/x-www-form-urlencoded' },
      body: new URLSearchParams({
        grant_type: 'client_credentials',
        client_id: clientId,
        client_secret: this.secrets[clientId],
        scope: `${audience}/.default`,
      }),
    });
    const body = (await response.json()) as { access_token?: string; error_description?: string };
    if (!body.access_token) throw new Error(`Entra refused the token: ${body.error_description}`);
    return body.access_token;
  }

  /** The headers of a delivery Event Grid sends with its token. */
  async headers(extra: Record<string, string> = {}): Promise<Record<string, string>> {
    return { authorization: `Bearer ${await this.token()}`, ...extra };
  }
}
