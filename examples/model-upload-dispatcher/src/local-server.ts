import * as http from 'node:http';
import type { AddressInfo } from 'node:net';
import { readBody } from '../../../src/common/http';
import { Dispatcher, type WebhookRequest } from './dispatcher';
import { RedactingLogger, type LogSink } from './redacting-logger';

/** Event Grid delivers at most 1 MB per event; a larger request is not a delivery. */
const MAX_BODY = 1024 * 1024;

/**
 * Hosts a Dispatcher on node:http, the way the Functions host serves the HTTP trigger: for
 * the integration tests and the local demo, where no Functions host runs.
 */
export class LocalDispatcherServer {
  private server?: http.Server;

  constructor(
    private readonly dispatcher: Dispatcher,
    private readonly sink: LogSink,
  ) {}

  /** Listens on 127.0.0.1 and resolves to the endpoint URL Event Grid would be given. */
  async start(port = 0): Promise<string> {
    this.server = http.createServer((req, res) => {
      this.serve(req, res).catch((error: unknown) => {
        this.sink.warn(`request failed: ${String(error)}`);
        if (!res.headersSent) res.writeHead(500);
        res.end();
      });
    });
    await new Promise<void>((resolve) => this.server!.listen(port, '127.0.0.1', resolve));
    const address = this.server.address() as AddressInfo;
    return `http://127.0.0.1:${address.port}/api/model-uploaded`;
  }

  async stop(): Promise<void> {
    if (!this.server) return;
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server!.close(() => resolve()));
  }

  private async serve(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const headers: WebhookRequest['headers'] = {};
    for (const [name, value] of Object.entries(req.headers)) {
      headers[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    let body = '';
    try {
      body = (await readBody(req, MAX_BODY)).toString('utf8');
    } catch {
      res.writeHead(413, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ error: `the request is larger than ${MAX_BODY} bytes` }));
      return;
    }
    const response = await this.dispatcher.handle(
      { method: req.method ?? 'GET', headers, body },
      new RedactingLogger(this.sink),
    );
    const text = response.body === undefined ? '' : JSON.stringify(response.body);
    res.writeHead(response.status, {
      ...response.headers,
      'content-length': Buffer.byteLength(text),
    });
    res.end(text);
  }
}
