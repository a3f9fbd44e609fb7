/**
 * Event Grid deliveries, in both schemas Event Grid can use for a webhook:
 *
 * - Event Grid schema: a JSON array of events `{id, topic, subject, eventType, eventTime, data,
 *   dataVersion}`; header `aeg-event-type: Notification`, or `SubscriptionValidation` for the
 *   handshake whose single event has eventType Microsoft.EventGrid.SubscriptionValidationEvent
 *   and data.validationCode, echoed back as `{"validationResponse": code}`.
 * - CloudEvents 1.0: one event `{specversion, type, source, id, subject, time, data}`
 *   (application/cloudevents+json) or an array (application/cloudevents-batch+json); the
 *   handshake is CloudEvents' abuse protection: an OPTIONS request with WebHook-Request-Origin,
 *   answered with WebHook-Allowed-Origin.
 *
 * Both are turned into one shape, so filtering and dispatching do not care which schema came.
 */

export const VALIDATION_EVENT = 'Microsoft.EventGrid.SubscriptionValidationEvent';
export const BLOB_CREATED = 'Microsoft.Storage.BlobCreated';

/** An event, whichever schema delivered it. */
export interface GridEvent {
  id: string;
  type: string;
  /** The resource the event is about: Event Grid's `topic`, CloudEvents' `source`. */
  topic: string;
  subject: string;
  time: string;
  data: Record<string, unknown>;
}

/** What a delivery asks of the dispatcher. */
export type Delivery =
  | { kind: 'validation'; topic: string; validationCode: string }
  | { kind: 'events'; schema: 'eventgrid' | 'cloudevents'; events: GridEvent[] };

/** The request could not be understood as an Event Grid delivery (answered with 400). */
export class DeliveryError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'DeliveryError';
  }
}

const isObject = (value: unknown): value is Record<string, unknown> =>
  typeof value === 'object' && value !== null && !Array.isArray(value);

const text = (value: unknown): string => (typeof value === 'string' ? value : '');

/** Parses a POSTed delivery: its headers (lower-case names) and body text. */
export function parseDelivery(headers: Record<string, string | undefined>, body: string): Delivery {
  let parsed: unknown;
  try {
    parsed = JSON.parse(body);
  } catch {
    throw new DeliveryError('the body is not JSON');
  }
  const contentType = (headers['content-type'] ?? '').toLowerCase();
  const items = Array.isArray(parsed) ? parsed : [parsed];
  if (items.length === 0) throw new DeliveryError('the delivery holds no events');
  if (!items.every(isObject)) throw new DeliveryError('every event must be a JSON object');

  const cloudEvents =
    contentType.includes('application/cloudevents') || items.every((item) => 'specversion' in item);
  if (cloudEvents) {
    return { kind: 'events', schema: 'cloudevents', events: items.map(fromCloudEvent) };
  }
  if (!Array.isArray(parsed)) {
    throw new DeliveryError('an Event Grid schema delivery must be a JSON array of events');
  }
  const events = items.map(fromEventGridEvent);
  const validation = events.find((event) => event.type === VALIDATION_EVENT);
  if (validation || headers['aeg-event-type'] === 'SubscriptionValidation') {
    if (!validation || events.length !== 1) {
      throw new DeliveryError(`a subscription validation must hold one ${VALIDATION_EVENT}`);
    }
    const validationCode = text(validation.data.validationCode);
    if (!validationCode) throw new DeliveryError('the validation event has no data.validationCode');
    return { kind: 'validation', topic: validation.topic, validationCode };
  }
  return { kind: 'events', schema: 'eventgrid', events };
}

function fromEventGridEvent(item: Record<string, unknown>): GridEvent {
  const event = {
    id: text(item.id),
    type: text(item.eventType),
    topic: text(item.topic),
    subject: text(item.subject),
    time: text(item.eventTime),
    data: isObject(item.data) ? item.data : {},
  };
  if (!event.id || !event.type || !event.topic) {
    throw new DeliveryError('an Event Grid event needs id, eventType and topic');
  }
  return event;
}

function fromCloudEvent(item: Record<string, unknown>): GridEvent {
  if (item.specversion !== '1.0') {
    throw new DeliveryError(
      `unsupported CloudEvents specversion ${JSON.stringify(item.specversion)}`,
    );
  }
  const event = {
    id: text(item.id),
    type: text(item.type),
    topic: text(item.source),
    subject: text(item.subject),
    time: text(item.time),
    data: isObject(item.data) ? item.data : {},
  };
  if (!event.id || !event.type || !event.topic) {
    throw new DeliveryError('a CloudEvent needs id, type and source');
  }
  return event;
}

/** The origins Event Grid sends the CloudEvents handshake from (public and sovereign clouds). */
const EVENT_GRID_ORIGIN = /^eventgrid\.azure\.(net|us|cn)$/i;

/**
 * The CloudEvents abuse-protection answer to `OPTIONS` with WebHook-Request-Origin: the
 * headers that allow the origin, or undefined when the origin is not Event Grid's.
 */
export function allowOrigin(origin: string | undefined): Record<string, string> | undefined {
  if (!origin || !EVENT_GRID_ORIGIN.test(origin.trim())) return undefined;
  return { 'WebHook-Allowed-Origin': origin.trim(), 'WebHook-Allowed-Rate': '*' };
}

/** Parses a BlobCreated subject: /blobServices/default/containers/{container}/blobs/{name}. */
export function blobOfSubject(subject: string): { container: string; blob: string } | undefined {
  const match = /^\/blobServices\/default\/containers\/([^/]+)\/blobs\/(.+)$/.exec(subject);
  return match ? { container: match[1], blob: match[2] } : undefined;
}
