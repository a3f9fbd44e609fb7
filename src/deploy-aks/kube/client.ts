import { errorMessage } from '../../common/errors';
import { ConnectionPool, readBody, send, statusError, type HttpResponse } from '../../common/http';
import type { ServiceError } from '../../common/http-error';
import type { Logger } from '../../common/logger';
import { parseRetryAfter } from '../../common/http-error';
import { sleep, withRetry, type RetryPolicy } from '../../common/retry';
import type { KubeObject } from '../manifests';
import type { KubeConnection } from './connection';
import { KubeApiError, UnreachableError } from './errors';

/** A resource type as discovery describes it. */
export interface ResourceInfo {
  group: string;
  version: string;
  apiVersion: string;
  kind: string;
  /** The plural resource name used in paths, e.g. deployments. */
  plural: string;
  namespaced: boolean;
}

export interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED' | 'BOOKMARK' | 'ERROR';
  object: KubeObject;
}

/** What a request is about, for error messages that name the verb and resource. */
interface Intent {
  verb: string;
  resource: string;
  name?: string;
  namespace?: string;
}

interface RequestOptions {
  query?: Record<string, string | undefined>;
  body?: string;
  contentType?: string;
  accept?: string;
  intent: Intent;
  /** Answer text instead of JSON (pod logs). */
  text?: boolean;
}

/** What a pod answered through the API server's proxy. */
export interface PodProxyResponse {
  status: number;
  headers: HttpResponse['headers'];
  body: Buffer;
  /** From sending the request to the end of the answer, throttled attempts excluded. */
  milliseconds: number;
  /** Attempts the API server throttled (429) before this one. */
  throttled: number;
  /** The API server's own Status when it answered instead of the pod (e.g. 503, pod unreachable). */
  fromApiServer?: { reason?: string; message?: string };
}

/** RBAC verbs of the proxy subresource, by HTTP method. */
const PROXY_VERBS: Record<string, string> = {
  GET: 'get',
  HEAD: 'get',
  POST: 'create',
  PUT: 'update',
  PATCH: 'patch',
  DELETE: 'delete',
};

const PROXY_THROTTLE_ATTEMPTS = 8;
/** A pod's answer larger than this is not a prediction: refused rather than held in memory. */
const PROXY_MAX_ANSWER = 16 * 1024 * 1024;

const RETRY: RetryPolicy = {
  maxAttempts: 4,
  baseDelayMs: 200,
  maxDelayMs: 2_000,
  maxRetryAfterMs: 10_000,
};

/**
 * A small Kubernetes API client over HTTPS: discovery, get, list, watch, server-side apply
 * and JSON patches, pod logs. Bearer tokens are asked for per request, so a token that nears
 * its expiry is replaced by the token source before it fails.
 */
export class KubeClient {
  private readonly pool: ConnectionPool;
  private readonly discovery = new Map<string, Promise<ResourceInfo[]>>();

  constructor(
    readonly connection: KubeConnection,
    private readonly logger: Logger,
  ) {
    this.pool = new ConnectionPool({
      maxSockets: 32,
      tls: {
        ca: connection.ca,
        rejectUnauthorized: !connection.insecureSkipTlsVerify,
        cert: connection.clientCertificate?.cert,
        key: connection.clientCertificate?.key,
      },
    });
  }

  close(): void {
    this.pool.destroy();
  }

  /** Discovery of one kind: its plural name and scope; undefined when the server has no such kind. */
  async resource(
    apiVersion: string,
    kind: string,
    refresh = false,
  ): Promise<ResourceInfo | undefined> {
    if (refresh) this.discovery.delete(apiVersion);
    let pending = this.discovery.get(apiVersion);
    if (!pending) {
      pending = this.discover(apiVersion);
      this.discovery.set(apiVersion, pending);
      pending.catch(() => this.discovery.delete(apiVersion));
    }
    return (await pending).find((info) => info.kind === kind);
  }

  private async discover(apiVersion: string): Promise<ResourceInfo[]> {
    const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
    const path = group ? `/apis/${group}/${version}` : `/api/${version}`;
    let list: { resources?: Array<{ name: string; kind: string; namespaced: boolean }> };
    try {
      list = await this.request('GET', path, {
        intent: { verb: 'get', resource: `discovery ${apiVersion}` },
      });
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return [];
      throw error;
    }
    return (list.resources ?? [])
      .filter((resource) => !resource.name.includes('/'))
      .map((resource) => ({
        group,
        version,
        apiVersion,
        kind: resource.kind,
        plural: resource.name,
        namespaced: resource.namespaced,
      }));
  }

  /** The path of a collection (no name) or of one object. */
  path(info: ResourceInfo, namespace?: string, name?: string): string {
    const base = info.group ? `/apis/${info.group}/${info.version}` : `/api/${info.version}`;
    const scope =
      info.namespaced && namespace ? `/namespaces/${encodeURIComponent(namespace)}` : '';
    return `${base}${scope}/${info.plural}${name ? `/${encodeURIComponent(name)}` : ''}`;
  }

  async get(
    info: ResourceInfo,
    namespace: string | undefined,
    name: string,
  ): Promise<KubeObject | undefined> {
    try {
      return await this.request<KubeObject>('GET', this.path(info, namespace, name), {
        intent: { verb: 'get', resource: resourceName(info), name, namespace },
      });
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return undefined;
      throw error;
    }
  }

  async list(
    info: ResourceInfo,
    namespace: string | undefined,
    query: Record<string, string | undefined> = {},
  ): Promise<{ items: KubeObject[]; resourceVersion: string }> {
    const list = await this.request<{ items: KubeObject[]; metadata: { resourceVersion: string } }>(
      'GET',
      this.path(info, namespace),
      { query, intent: { verb: 'list', resource: resourceName(info), namespace } },
    );
    // List items carry no apiVersion/kind; restore them so objects look the same everywhere.
    for (const item of list.items) {
      item.apiVersion ??= info.apiVersion;
      item.kind ??= info.kind;
    }
    return { items: list.items, resourceVersion: list.metadata.resourceVersion };
  }

  /** Server-side apply of one object; returns the object as stored (or as it would be, dry run). */
  async apply(
    info: ResourceInfo,
    object: KubeObject,
    options: { fieldManager: string; force: boolean; dryRun: boolean },
  ): Promise<KubeObject> {
    const namespace = info.namespaced ? object.metadata.namespace : undefined;
    return this.request<KubeObject>('PATCH', this.path(info, namespace, object.metadata.name), {
      query: {
        fieldManager: options.fieldManager,
        force: String(options.force),
        fieldValidation: 'Strict',
        dryRun: options.dryRun ? 'All' : undefined,
      },
      // JSON is YAML; sending JSON avoids a second YAML serialisation of the same object.
      body: JSON.stringify(object),
      contentType: 'application/apply-patch+yaml',
      intent: {
        verb: 'patch',
        resource: resourceName(info),
        name: object.metadata.name,
        namespace,
      },
    });
  }

  /** An RFC 6902 JSON patch, e.g. replacing a pod template on rollback. */
  async jsonPatch(
    info: ResourceInfo,
    namespace: string | undefined,
    name: string,
    operations: unknown[],
    fieldManager: string,
  ): Promise<KubeObject> {
    return this.request<KubeObject>('PATCH', this.path(info, namespace, name), {
      query: { fieldManager },
      body: JSON.stringify(operations),
      contentType: 'application/json-patch+json',
      intent: { verb: 'patch', resource: resourceName(info), name, namespace },
    });
  }

  /** The last lines of a container's log; '' when they cannot be read. */
  async logs(
    namespace: string,
    pod: string,
    container: string,
    tailLines: number,
    previous: boolean,
  ): Promise<string> {
    try {
      return await this.request<string>('GET', `/api/v1/namespaces/${namespace}/pods/${pod}/log`, {
        query: { container, tailLines: String(tailLines), previous: previous ? 'true' : undefined },
        intent: { verb: 'get', resource: 'pods/log', name: pod, namespace },
        text: true,
      });
    } catch (error) {
      this.logger.debug(`logs of ${pod}/${container}: ${errorMessage(error)}`);
      return '';
    }
  }

  /**
   * Streams watch events from `resourceVersion` until the server ends the watch, the signal
   * aborts it, or the connection drops; resolves then (the caller re-watches).
   */
  async watch(
    info: ResourceInfo,
    namespace: string | undefined,
    resourceVersion: string,
    onEvent: (event: WatchEvent) => void,
    signal: AbortSignal,
  ): Promise<void> {
    const query = {
      watch: '1',
      resourceVersion,
      allowWatchBookmarks: 'true',
      timeoutSeconds: '300',
    };
    const intent = { verb: 'watch', resource: resourceName(info), namespace };
    const response = await this.open('GET', this.path(info, namespace), { query, intent }, signal);
    if (response.status !== 200) throw await this.statusError(response, intent);
    let buffer = '';
    response.body.setEncoding('utf8');
    try {
      for await (const chunk of response.body) {
        buffer += chunk as string;
        let newline;
        while ((newline = buffer.indexOf('\n')) >= 0) {
          const line = buffer.slice(0, newline).trim();
          buffer = buffer.slice(newline + 1);
          if (line) onEvent(JSON.parse(line) as WatchEvent);
        }
      }
    } catch (error) {
      if (!signal.aborted)
        this.logger.debug(`watch ${intent.resource} ended: ${errorMessage(error)}`);
    }
  }

  /**
   * Deletes one object, its dependents collected afterwards by the garbage collector (what
   * `kubectl delete` does); false when it was already gone.
   */
  async delete(info: ResourceInfo, namespace: string | undefined, name: string): Promise<boolean> {
    try {
      await this.request('DELETE', this.path(info, namespace, name), {
        body: JSON.stringify({
          kind: 'DeleteOptions',
          apiVersion: 'v1',
          propagationPolicy: 'Background',
        }),
        intent: { verb: 'delete', resource: resourceName(info), name, namespace },
      });
      return true;
    } catch (error) {
      if (error instanceof KubeApiError && error.status === 404) return false;
      throw error;
    }
  }

  /**
   * One HTTP request to a pod's port through the API server's proxy subresource
   * (`/api/v1/namespaces/{ns}/pods/{pod}:{port}/proxy/{path}`): no ingress, port-forward or
   * public endpoint needed. The pod's answer comes back whatever its status; what the API
   * server says itself (a Status: the pod unreachable, 403, throttling) is told apart in
   * `fromApiServer`. A throttled request (429 with Retry-After, API Priority and Fairness)
   * is retried after the wait it names; nothing else is, so a pod's own error is seen as is.
   */
  async proxyPod(
    namespace: string,
    pod: string,
    port: number,
    request: { method: string; path: string; body?: string; contentType?: string },
  ): Promise<PodProxyResponse> {
    const [pathname, search = ''] = request.path.split(/\?(.*)/s);
    const path =
      `/api/v1/namespaces/${encodeURIComponent(namespace)}/pods/` +
      `${encodeURIComponent(pod)}:${port}/proxy${pathname.startsWith('/') ? '' : '/'}${pathname}`;
    const query = Object.fromEntries(new URLSearchParams(search));
    const verb = PROXY_VERBS[request.method.toUpperCase()] ?? request.method.toLowerCase();
    const intent = { verb, resource: 'pods/proxy', name: pod, namespace };
    for (let attempt = 1; ; attempt++) {
      const started = performance.now();
      const response = await this.open(request.method, path, {
        query,
        body: request.body,
        contentType: request.contentType,
        accept: 'application/json, */*',
        intent,
      });
      const body = await readBody(response.body, PROXY_MAX_ANSWER);
      const milliseconds = performance.now() - started;
      const status = response.status;
      const apiStatus = apiServerStatus(response, body);
      if (apiStatus && status === 429 && attempt < PROXY_THROTTLE_ATTEMPTS) {
        const wait = Math.min(
          10_000,
          parseRetryAfter(response.headers['retry-after'] as string | undefined) ?? 1_000,
        );
        this.logger.debug(`proxy to ${pod}:${port} throttled (429); again in ${wait} ms`);
        await sleep(wait);
        continue;
      }
      if (apiStatus && (status === 401 || status === 403)) {
        throw describe(status, kubeStatusBody(body.toString('utf8')), intent, undefined);
      }
      return {
        status,
        headers: response.headers,
        body,
        milliseconds,
        throttled: attempt - 1,
        fromApiServer: apiStatus,
      };
    }
  }

  async request<T>(method: string, path: string, options: RequestOptions): Promise<T> {
    return withRetry(
      async () => {
        const response = await this.open(method, path, options);
        if (response.status < 200 || response.status >= 300) {
          throw await this.statusError(response, options.intent);
        }
        const body = (await readBody(response.body, 64 * 1024 * 1024)).toString('utf8');
        return (options.text ? body : JSON.parse(body)) as T;
      },
      {
        policy: RETRY,
        logger: this.logger,
        description: `${options.intent.verb} ${options.intent.resource}`,
      },
    ).catch((error: unknown) => {
      if (error instanceof KubeApiError) throw error;
      const code = (error as NodeJS.ErrnoException).code;
      if (
        code &&
        /^(ECONNREFUSED|ENOTFOUND|EHOSTUNREACH|ENETUNREACH|ETIMEDOUT|ECONNRESET|EAI_AGAIN)$/.test(
          code,
        )
      ) {
        throw new UnreachableError(
          `The Kubernetes API server ${this.connection.server.origin} is unreachable ` +
            `(${code}: ${errorMessage(error)}). Check that the cluster is running and reachable from ` +
            `this runner; a private cluster needs a runner inside its network.`,
        );
      }
      throw error;
    });
  }

  private async open(
    method: string,
    path: string,
    options: Omit<RequestOptions, 'intent'> & { intent: Intent },
    signal?: AbortSignal,
  ): Promise<HttpResponse> {
    const url = new URL(path, this.connection.server);
    // Keep a path prefix the server URL may carry (e.g. a proxy path).
    url.pathname = this.connection.server.pathname.replace(/\/$/, '') + path;
    for (const [key, value] of Object.entries(options.query ?? {})) {
      if (value !== undefined) url.searchParams.set(key, value);
    }
    const headers: Record<string, string> = {
      accept: options.text ? 'text/plain, */*' : (options.accept ?? 'application/json'),
      'user-agent': 'ai-app-delivery-deploy-aks',
    };
    if (this.connection.token) headers.authorization = `Bearer ${await this.connection.token()}`;
    if (options.body !== undefined) {
      headers['content-type'] = options.contentType ?? 'application/json';
      headers['content-length'] = String(Buffer.byteLength(options.body));
    }
    return send({
      method: method as 'GET' | 'PATCH',
      url,
      headers,
      body: options.body,
      pool: this.pool,
      signal,
      // Requests still waiting for their answer time out; a watch's body stays open for minutes.
      idleTimeoutMs: 30_000,
      bodyIdleTimeoutMs: options.query?.watch ? 0 : 60_000,
    });
  }

  /** Turns a Status answer into an error that says what was refused, and for 401/403 what to fix. */
  private statusError(response: HttpResponse, intent: Intent): Promise<KubeApiError> {
    return statusError(response, intent.verb, kubeStatusBody, (_, status, service, retryAfter) =>
      describe(status, service, intent, retryAfter),
    ) as Promise<KubeApiError>;
  }
}

/** A Kubernetes Status body: its reason, message and details. */
function kubeStatusBody(body: string): ServiceError {
  try {
    const parsed = JSON.parse(body) as {
      message?: string;
      reason?: string;
      details?: Record<string, unknown>;
    };
    return { code: parsed.reason, message: parsed.message, details: parsed.details };
  } catch {
    return { message: body.slice(0, 300) };
  }
}

function describe(
  status: number,
  service: ServiceError,
  intent: Intent,
  retryAfterMs: number | undefined,
): KubeApiError {
  const target = `${intent.resource}${intent.name ? ` '${intent.name}'` : ''}${intent.namespace ? ` in namespace '${intent.namespace}'` : ''}`;
  const message = service.message ?? `HTTP ${status}`;
  let text: string;
  if (status === 401) {
    text =
      `The Kubernetes API server rejected the credentials (401 Unauthorized) on ${intent.verb} ${target}: ` +
      `${message}. For AKS with Entra ID the token must be for the AKS server app; for a ` +
      `kubeconfig, check that its token or certificate is still valid.`;
  } else if (status === 403) {
    text =
      `Kubernetes forbids '${intent.verb}' on ${target} for this identity (403 Forbidden): ` +
      `${message}. Grant it an RBAC role that allows ${intent.verb} on ${intent.resource}, e.g. the ` +
      `Azure Kubernetes Service RBAC Writer role (or a RoleBinding) for the namespace.`;
  } else {
    text = `Kubernetes refused ${intent.verb} ${target}: ${message} (HTTP ${status}${service.code ? ` ${service.code}` : ''})`;
  }
  return new KubeApiError(
    text,
    status,
    service.code,
    service.details,
    retryAfterMs,
    service.message,
  );
}

export function resourceName(info: ResourceInfo): string {
  return info.group ? `${info.plural}.${info.group}` : info.plural;
}

/**
 * The Status object of an answer the API server gave itself rather than the proxied pod: a
 * JSON `kind: Status` body (a pod's own JSON error has no such shape).
 */
function apiServerStatus(response: HttpResponse, body: Buffer): PodProxyResponse['fromApiServer'] {
  if (response.status < 400) return undefined;
  if (!/json/.test(String(response.headers['content-type'] ?? ''))) return undefined;
  try {
    const parsed = JSON.parse(body.toString('utf8')) as {
      kind?: string;
      apiVersion?: string;
      reason?: string;
      message?: string;
    };
    if (parsed.kind === 'Status' && parsed.apiVersion === 'v1')
      return { reason: parsed.reason, message: parsed.message };
  } catch {
    // not JSON: the pod's own answer
  }
  return undefined;
}
