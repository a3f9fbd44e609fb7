/**
 * The Azure Functions entry (Node.js v4 programming model): an HTTP trigger that Event Grid
 * calls as a webhook. Only the mapping between the Functions types and the dispatcher lives
 * here; everything else is in ../dispatcher.ts, tested without the Functions runtime.
 */
import {
  app,
  type HttpRequest,
  type HttpResponseInit,
  type InvocationContext,
} from '@azure/functions';
import { errorMessage } from '../../../../src/common/errors';
import { Dispatcher } from '../dispatcher';
import { RedactingLogger } from '../redacting-logger';
import { readSettings } from '../settings';

// One dispatcher per worker process, so the installation token is reused across deliveries.
// Settings are read on first use: a mistake fails every delivery with the setting's name in
// the log (and a 500, which Event Grid retries) instead of crashing the host.
let dispatcher: Dispatcher | undefined;

async function modelUploaded(
  request: HttpRequest,
  context: InvocationContext,
): Promise<HttpResponseInit> {
  const logger = new RedactingLogger({
    info: (message) => context.log(message),
    warn: (message) => context.warn(message),
    debug: (message) => context.debug(message),
  });
  try {
    dispatcher ??= new Dispatcher(readSettings(process.env));
  } catch (error) {
    context.error(errorMessage(error));
    return { status: 500, jsonBody: { error: 'the dispatcher is misconfigured; see its log' } };
  }
  const headers: Record<string, string> = {};
  request.headers.forEach((value, name) => (headers[name.toLowerCase()] = value));
  const response = await dispatcher.handle(
    {
      method: request.method,
      headers,
      body: request.method === 'POST' ? await request.text() : '',
    },
    logger,
  );
  return response.body === undefined
    ? { status: response.status, headers: response.headers }
    : { status: response.status, headers: response.headers, jsonBody: response.body };
}

app.http('model-uploaded', {
  methods: ['POST', 'OPTIONS'],
  // Event Grid calls https://<app>.azurewebsites.net/api/model-uploaded?code=<function key>.
  authLevel: 'function',
  handler: modelUploaded,
});
