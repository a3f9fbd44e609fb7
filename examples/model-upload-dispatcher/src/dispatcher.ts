import { errorMessage } from '../../../src/common/errors';
import type { Logger } from '../../../src/common/logger';
import { allowOrigin, DeliveryError, parseDelivery } from './events';
import { decide, fromConfiguredAccount, type ModelUploadedPayload } from './filter';
import { EnvHttpProxyAgent, fetch as undiciFetch } from 'undici';
import { EntraTokenValidator, KeysUnavailable, TokenRefused } from './entra-token';
import { GitHubClient, GitHubError, type GitHubClientOptions } from './github';
import type { DispatcherSettings } from './settings';

/** An HTTP request as the dispatcher sees it, whatever hosts it (Functions, node:http). */
export interface WebhookRequest {
  method: string;
  /** Header names in lower case. */
  headers: Record<string, string | undefined>;
  body: string;
}

export interface WebhookResponse {
  status: number;
  headers: Record<string, string>;
  /** Sent as JSON. */
  body?: unknown;
}

const reply = (status: number, body?: unknown, headers: Record<string, string> = {}) => ({
  status,
  headers: body === undefined ? headers : { 'content-type': 'application/json', ...headers },
  body,
});

/**
 * Turns Event Grid deliveries into repository_dispatch calls. Status codes follow Event Grid's
 * delivery rules: 200 when every event was dispatched or deliberately ignored; 401 without a
 * valid Entra token from Event Grid for this webhook (503 when the tenant's keys cannot be
 * read); 400 for a
 * request that is not an Event Grid delivery and 403 for events from another storage account
 * (Event Grid does not retry those); 503 when GitHub could not be reached or asked for a longer
 * pause than the function waits, 502 when GitHub refused the dispatch: Event Grid redelivers
 * both later with its own backoff. A batch fails whole, so infra/main.bicep sets one event per
 * batch and a redelivery never repeats another blob's dispatch.
 */
export class Dispatcher {
  private readonly github: GitHubClient;
  private readonly entra: EntraTokenValidator;

  /**
   * One per process: the GitHub client caches its installation token, the Entra check the
   * tenant's keys, across deliveries. Both reach out through the proxy the environment names.
   */
  constructor(
    private readonly settings: DispatcherSettings,
    options: GitHubClientOptions & { now?: () => number } = {},
  ) {
    const agent = options.agent ?? new EnvHttpProxyAgent();
    this.github = new GitHubClient(settings, { ...options, agent });
    this.entra = new EntraTokenValidator(
      settings.entra,
      (url, init) => undiciFetch(url, { ...init, dispatcher: agent }),
      options.now,
    );
  }

  /** Answers one delivery; `logger` is the invocation's (secrets are masked through it). */
  async handle(request: WebhookRequest, logger: Logger): Promise<WebhookResponse> {
    const method = request.method.toUpperCase();
    if (method === 'OPTIONS') return this.cloudEventsHandshake(request, logger);
    if (method !== 'POST')
      return reply(405, { error: 'expected POST (or OPTIONS for the handshake)' });

    // Only Event Grid, with an Entra token for this webhook, gets its payload read at all.
    try {
      await this.entra.check(request.headers.authorization);
    } catch (error) {
      if (error instanceof TokenRefused) {
        logger.warning(`Refused a request without a valid Event Grid token: ${error.message}`);
        return reply(401, { error: 'unauthorized' }, { 'WWW-Authenticate': 'Bearer' });
      }
      if (error instanceof KeysUnavailable) {
        logger.warning(`Could not read the tenant's signing keys: ${error.message}`);
        return reply(503, { error: "Entra's signing keys are unavailable; deliver again later" });
      }
      throw error;
    }

    let delivery;
    try {
      delivery = parseDelivery(request.headers, request.body);
    } catch (error) {
      if (error instanceof DeliveryError) {
        logger.warning(`Refused a request that is not an Event Grid delivery: ${error.message}`);
        return reply(400, { error: error.message });
      }
      throw error;
    }

    if (delivery.kind === 'validation') {
      if (!fromConfiguredAccount(delivery, this.settings)) {
        logger.warning(`Refused a subscription validation for ${delivery.topic}`);
        return reply(403, { error: 'this endpoint accepts events of one storage account only' });
      }
      logger.info(`Answered Event Grid's subscription validation for ${delivery.topic}`);
      return reply(200, { validationResponse: delivery.validationCode });
    }

    const foreign = delivery.events.filter((event) => !fromConfiguredAccount(event, this.settings));
    if (foreign.length > 0) {
      // Nothing of a delivery with a foreign event is trusted, not even its other events.
      logger.warning(
        `Refused ${delivery.events.length} event(s): ${foreign.length} from ${foreign[0].topic}, ` +
          `not the configured storage account`,
      );
      return reply(403, { error: 'this endpoint accepts events of one storage account only' });
    }

    const dispatched: ModelUploadedPayload[] = [];
    const ignored: Array<{ id: string; reason: string }> = [];
    const seen = new Set<string>();
    for (const event of delivery.events) {
      const decision = decide(event, this.settings);
      if (decision.action === 'ignore') {
        logger.info(`Ignored event ${event.id}: ${decision.reason}`);
        ignored.push({ id: event.id, reason: decision.reason });
        continue;
      }
      const { payload } = decision;
      const key = `${payload.blob}\n${payload.etag}`;
      if (seen.has(key)) continue;
      seen.add(key);
      try {
        await this.github.dispatch(payload, logger);
      } catch (error) {
        logger.warning(
          `Could not dispatch ${payload.blob} (${payload.etag}): ${errorMessage(error)}`,
        );
        const wait = error instanceof GitHubError ? error.rateLimitWaitMs : undefined;
        // Either way Event Grid redelivers: 503 when GitHub was unavailable or asked to wait,
        // 502 when it refused (a token or permission problem that a fixed setting can cure).
        const refused = error instanceof GitHubError && wait === undefined && error.status < 500;
        return reply(
          refused ? 502 : 503,
          { error: errorMessage(error), dispatched: dispatched.map((p) => p.blob) },
          wait ? { 'retry-after': String(Math.ceil(wait / 1000)) } : {},
        );
      }
      const { owner, repo } = this.settings.repository;
      logger.info(
        `Dispatched ${this.settings.eventType} to ${owner}/${repo}: ${payload.container}/${payload.blob} ` +
          `etag ${payload.etag}, ${payload.size} bytes`,
      );
      dispatched.push(payload);
    }
    return reply(200, {
      dispatched: dispatched.map((p) => ({ blob: p.blob, etag: p.etag })),
      ignored,
    });
  }

  private cloudEventsHandshake(request: WebhookRequest, logger: Logger): WebhookResponse {
    const origin = request.headers['webhook-request-origin'];
    if (!origin) return reply(400, { error: 'OPTIONS without WebHook-Request-Origin' });
    const allowed = allowOrigin(origin);
    if (!allowed) {
      logger.warning(`Refused the CloudEvents handshake from origin ${origin}`);
      return reply(403, { error: 'only Event Grid may subscribe this endpoint' });
    }
    logger.info(`Answered the CloudEvents handshake from ${origin}`);
    return reply(200, undefined, allowed);
  }
}
