import { errorMessage } from '../../common/errors';
import { ConnectionPool, readBody, send, statusError, type HttpResponse } from '../../common/http';
import type { ServiceError } from '../../common/http-error';
import type { Logger } from '../../common/logger';
import { withRetry, type RetryPolicy } from '../../common/retry';
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
