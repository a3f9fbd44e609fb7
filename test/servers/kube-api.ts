/* eslint-disable @typescript-eslint/no-explicit-any -- the double handles JSON objects of every kind */
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { isDeepStrictEqual } from 'node:util';
import { parse } from 'yaml';
import { verifyJwt } from './jwt';
import { ContainerKubelet, resolvePort, type ContainerKubeletOptions } from './kube-kubelet';
import { LoopbackLoadBalancers } from './kube-load-balancer';
import { closeServer, listenOnLoopback } from '../support/ports';

/** The AKS AAD server application: the audience AKS API servers require of Entra tokens. */
export const AKS_SERVER_APP_ID = '6dae42f8-4368-4678-94ff-3960e28e3630';

/** What the simulated kubelet does with a pod, chosen by its first container's image. */
export type PodBehaviour =
  | { kind: 'ready'; delayMs?: number }
  | { kind: 'crash'; logs?: string[] }
  | { kind: 'pull-fail' }
  /** The registry throttles: the first `failures` pulls fail with 429, then the pod starts. */
  | { kind: 'pull-throttled'; failures: number }
  | { kind: 'invalid-name' }
  | { kind: 'config-error' }
  | { kind: 'pending' };

export interface KubeApiOptions {
  tls: { key: string; cert: string };
  /** Entra's signing keys; bearer JWTs must be signed by them and be for `audience`. */
  trustedKeys?: () => Array<Record<string, unknown>>;
  /** The audience Entra tokens must carry; AKS's server app by default. */
  audience?: string;
  /** Static bearer tokens (local accounts, like the admin kubeconfig's). */
  staticTokens?: string[];
  /** Delay before a healthy pod is ready. */
  readyDelayMs?: number;
  /** Behaviour per image; images not listed become ready. */
  behaviours?: Record<string, PodBehaviour>;
  /** Delay before a LoadBalancer service gets an address; never when undefined. */
  loadBalancerDelayMs?: number;
  /** Nodes, for DaemonSets. */
  nodes?: number;
  /**
   * Run pods as real containers through dockerd (test/servers/kube-kubelet.ts) instead of
   * simulating them; LoadBalancer Services then get a loopback address that forwards to the
   * ready pods. `behaviours` do not apply then: the containers do what they do.
   */
  containers?: ContainerKubeletOptions;
  /**
   * Proxy requests (pods/proxy) in flight at once before the API server answers 429 with
   * Retry-After, as API Priority and Fairness does when a priority level is saturated.
   */
  proxyMaxInFlight?: number;
  /**
   * The API server's FQDN in the kubeconfigs it hands out, as AKS names it
   * (`<dns prefix>-<hash>.hcp.<region>.azmk8s.io`): the proxy tests route it (port 443) here.
   * 127.0.0.1:<port> otherwise.
   */
  hostName?: string;
}

type Obj = Record<string, any>;

interface ResourceType {
  group: string;
  version: string;
  plural: string;
  singular: string;
  kind: string;
  namespaced: boolean;
  shortNames?: string[];
  subresources?: string[];
}

const VERBS = ['create', 'delete', 'deletecollection', 'get', 'list', 'patch', 'update', 'watch'];

const RESOURCES: ResourceType[] = [
  {
    group: '',
    version: 'v1',
    plural: 'namespaces',
    singular: 'namespace',
    kind: 'Namespace',
    namespaced: false,
    shortNames: ['ns'],
    subresources: ['status'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'configmaps',
    singular: 'configmap',
    kind: 'ConfigMap',
    namespaced: true,
    shortNames: ['cm'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'secrets',
    singular: 'secret',
    kind: 'Secret',
    namespaced: true,
  },
  {
    group: '',
    version: 'v1',
    plural: 'services',
    singular: 'service',
    kind: 'Service',
    namespaced: true,
    shortNames: ['svc'],
    subresources: ['status'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'serviceaccounts',
    singular: 'serviceaccount',
    kind: 'ServiceAccount',
    namespaced: true,
    shortNames: ['sa'],
  },
  {
    group: '',
    version: 'v1',
    plural: 'pods',
    singular: 'pod',
    kind: 'Pod',
    namespaced: true,
    shortNames: ['po'],
    subresources: ['log', 'proxy', 'status'],
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'deployments',
    singular: 'deployment',
    kind: 'Deployment',
    namespaced: true,
    shortNames: ['deploy'],
    subresources: ['scale', 'status'],
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'replicasets',
    singular: 'replicaset',
    kind: 'ReplicaSet',
    namespaced: true,
    shortNames: ['rs'],
    subresources: ['scale', 'status'],
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'statefulsets',
    singular: 'statefulset',
    kind: 'StatefulSet',
    namespaced: true,
    shortNames: ['sts'],
    subresources: ['scale', 'status'],
  },
  {
    group: 'apps',
    version: 'v1',
    plural: 'daemonsets',
    singular: 'daemonset',
    kind: 'DaemonSet',
    namespaced: true,
    shortNames: ['ds'],
    subresources: ['status'],
  },
  {
    group: 'batch',
    version: 'v1',
    plural: 'jobs',
    singular: 'job',
    kind: 'Job',
    namespaced: true,
    subresources: ['status'],
  },
  {
    group: 'batch',
    version: 'v1',
    plural: 'cronjobs',
    singular: 'cronjob',
    kind: 'CronJob',
    namespaced: true,
    shortNames: ['cj'],
    subresources: ['status'],
  },
  {
    group: 'networking.k8s.io',
    version: 'v1',
    plural: 'ingresses',
    singular: 'ingress',
    kind: 'Ingress',
    namespaced: true,
    shortNames: ['ing'],
    subresources: ['status'],
  },
];

const groupVersion = (type: ResourceType) =>
  type.group ? `${type.group}/${type.version}` : type.version;

class HttpError extends Error {
  constructor(
    readonly status: number,
    readonly reason: string,
    message: string,
    readonly details?: Obj,
  ) {
    super(message);
  }
}

interface StoredEvent {
  rv: number;
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  resource: ResourceType;
  object: Obj;
}

interface Watcher {
  resource: ResourceType;
  namespace?: string;
  send: (event: StoredEvent) => void;
  end: () => void;
}

/**
 * A stand-in for a Kubernetes API server, small but faithful to the wire protocol for what
 * deploy-aks and `kubectl get` use: discovery (/api, /apis, group versions, /version),
 * server-side apply (application/apply-patch+yaml with a field manager, conflicts, force,
 * dry run), JSON and merge patches, get, list (label/field selectors, Table output for
 * kubectl), watch (newline-delimited events from a resourceVersion), delete, and pod logs.
 * Bearer tokens are either static ones or Entra JWTs for the AKS server app. A simulated
 * Deployment/ReplicaSet/StatefulSet/DaemonSet/Job controller and kubelet bring pods up, or
 * make them crash-loop, fail to pull, or stay pending, per image, as a test asks.
 */
export class KubeApiServer {
  /** Every request: method, path with query, and the user it authenticated as. */
  readonly requests: Array<{
    method: string;
    path: string;
    user: string;
    accept?: string;
    contentType?: string;
  }> = [];
  /** Every bearer token presented, so tests can check that none was printed. */
  readonly bearerTokens = new Set<string>();
  /** When each pod first showed a failing reason (ErrImagePull, CrashLoopBackOff, ...), and its message. */
  readonly podFailures: Array<{ pod: string; reason: string; message?: string; at: number }> = [];
  /** Verbs and resources refused with 403, e.g. `patch deployments`. */
  readonly forbidden = new Set<string>();
  /** Requests to pods through the proxy subresource: forwarded, and refused with 429. */
  readonly proxyCounts = { forwarded: 0, throttled: 0 };
  private proxyInFlight = 0;
  private readonly kubelet?: ContainerKubelet;
  private readonly balancers = new LoopbackLoadBalancers();
  private readonly objects = new Map<string, Obj>();
  private readonly managed = new Map<
    string,
    Map<string, { apiVersion: string; paths: Set<string> }>
  >();
  private readonly events: StoredEvent[] = [];
  private readonly watchers = new Set<Watcher>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly podLogs = new Map<string, string[]>();
  private rv = 100;
  private server?: https.Server;
  private port = 0;
  private stopped = false;
  private clusterIpCounter = 10;
  private compactedBefore = 0;

  constructor(readonly options: KubeApiOptions) {
    if (options.containers) {
      this.kubelet = new ContainerKubelet(options.containers, {
        update: (pod, change) => this.updatePod(pod, change),
        lookup: (kind, namespace, name) => this.get(kind, namespace, name),
      });
    }
    for (const name of ['default', 'kube-system', 'kube-public']) {
      this.store(RESOURCES[0], {
        apiVersion: 'v1',
        kind: 'Namespace',
        metadata: { name },
        spec: { finalizers: ['kubernetes'] },
        status: { phase: 'Active' },
      });
    }
  }

  /** Where the server listens. */
  get url(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  /** The server as kubeconfigs name it: its FQDN when it has one. */
  get serverUrl(): string {
    return this.options.hostName ? `https://${this.options.hostName}` : this.url;
  }

  async start(): Promise<this> {
    this.server = https.createServer(this.options.tls, (req, res) => {
      this.handle(req, res).catch((error: unknown) => {
        if (error instanceof HttpError)
          return status(res, error.status, error.reason, error.message, error.details);
        status(res, 500, 'InternalError', String(error));
      });
    });
    this.port = await listenOnLoopback(this.server);
    await this.kubelet?.start();
    return this;
  }

  async stop(): Promise<void> {
    this.stopped = true;
    for (const timer of this.timers) clearTimeout(timer);
    await closeServer(this.server);
    await this.balancers.close();
    await this.kubelet?.close();
  }

  /**
   * Forgets the event history, as etcd compaction does, and ends every open watch (as an API
   * server restart or a load balancer does): clients re-watching from a version before now
   * get 410 Expired and must list again.
   */
  compactAndDropWatches(): void {
    this.compactedBefore = this.rv + 1;
    this.events.length = 0;
    for (const watcher of [...this.watchers]) watcher.end();
  }

  /** Sets what pods running `image` do from now on. */
  behave(image: string, behaviour: PodBehaviour): void {
    this.options.behaviours = { ...this.options.behaviours, [image]: behaviour };
  }

  /** An object as stored, or undefined. */
  get(kind: string, namespace: string | undefined, name: string): Obj | undefined {
    const type = RESOURCES.find((r) => r.kind === kind)!;
    const object = this.objects.get(keyOf(type, type.namespaced ? namespace : undefined, name));
    return object && structuredClone(object);
  }

  /**
   * Where a running pod's container port is reachable from this host (real containers only):
   * what the pod proxy forwards to, for measuring the proxy against a direct request.
   */
  podEndpoint(
    namespace: string,
    name: string,
    port: number,
  ): { host: string; port: number } | undefined {
    const pod = this.get('Pod', namespace, name);
    return pod && this.kubelet?.endpoint(pod.metadata.uid, port);
  }

  /** Every stored object of a kind in a namespace. */
  list(kind: string, namespace?: string): Obj[] {
    const type = RESOURCES.find((r) => r.kind === kind)!;
    return this.collection(type, namespace).map((o) => structuredClone(o));
  }

  /** Creates or replaces an object as another client would (e.g. `kubectl edit`), with a field manager. */
  seed(object: Obj, manager = 'kubectl-client-side-apply'): Obj {
    const type = RESOURCES.find((r) => r.kind === object.kind)!;
    return this.serverSideApply(
      type,
      object.metadata.namespace,
      object.metadata.name,
      structuredClone(object),
      manager,
      true,
      false,
    );
  }

  /** A kubeconfig for this server, with the given user entry. */
  kubeconfig(user: Obj, ca: string): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters:',
      '- name: aks-double',
      '  cluster:',
      `    server: ${this.serverUrl}`,
      `    certificate-authority-data: ${Buffer.from(ca).toString('base64')}`,
      'contexts:',
      '- name: aks-double',
      '  context:',
      '    cluster: aks-double',
      '    user: deployer',
      'current-context: aks-double',
      'users:',
      '- name: deployer',
      '  user:',
      ...JSON.stringify(user)
        .split('\n')
        .map((line) => `    ${line}`),
      '',
    ].join('\n');
  }

  // ---- HTTP ------------------------------------------------------------------------------

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', this.url);
    const proxy = /^\/api\/v1\/namespaces\/([^/]+)\/pods\/([^/]+)\/proxy(\/.*)?$/.exec(
      url.pathname,
    );
    if (proxy) return this.proxyToPod(req, res, url, proxy);
    const body = await readBody(req);
    const user = this.admit(req, url);
    const path = url.pathname.replace(/\/+$/, '') || '/';
    if (path === '/version')
      return send(res, 200, {
        major: '1',
        minor: '29',
        gitVersion: 'v1.29.4',
        gitCommit: '0'.repeat(40),
        gitTreeState: 'clean',
        buildDate: '2024-04-16T00:00:00Z',
        goVersion: 'go1.21.9',
        compiler: 'gc',
        platform: 'linux/amd64',
      });
    if (path === '/healthz' || path === '/readyz' || path === '/livez') {
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end('ok');
    }
    if (path === '/api') {
      const server = new URL(this.serverUrl);
      return send(res, 200, {
        kind: 'APIVersions',
        versions: ['v1'],
        serverAddressByClientCIDRs: [
          { clientCIDR: '0.0.0.0/0', serverAddress: `${server.hostname}:${server.port || 443}` },
        ],
      });
    }
    if (path === '/apis') return send(res, 200, this.groupList());
    const discovery = /^\/(?:api\/(v1)|apis\/([^/]+)\/([^/]+))$/.exec(path);
    if (discovery) {
      const group = discovery[2] ?? '';
      const version = discovery[1] ?? discovery[3];
      const types = RESOURCES.filter((r) => r.group === group && r.version === version);
      if (types.length === 0)
        throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
      return send(res, 200, {
        kind: 'APIResourceList',
        apiVersion: 'v1',
        groupVersion: group ? `${group}/${version}` : version,
        resources: types.flatMap(resourceEntries),
      });
    }
    const match =
      /^\/(?:api\/v1|apis\/([^/]+)\/([^/]+))(?:\/namespaces\/([^/]+))?\/([^/]+)(?:\/([^/]+))?(?:\/([^/]+))?$/.exec(
        path,
      );
    if (!match)
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const [, groupName = '', versionName = 'v1', namespace, plural, name, subresource] = match.map(
      (m) => (m === undefined ? undefined : decodeURIComponent(m)),
    );
    const type = RESOURCES.find(
      (r) => r.group === groupName && r.version === versionName && r.plural === plural,
    );
    if (!type)
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');
    const objectNamespace = type.namespaced ? namespace : undefined;
    const objectName = name;
    const sub = subresource;
    const verb = verbOf(req.method ?? 'GET', objectName, url.searchParams);
    this.authorize(verb, type, objectNamespace, objectName, user, sub);

    if (sub === 'log' && type.kind === 'Pod' && req.method === 'GET') {
      const pod = this.require(type, objectNamespace, objectName!);
      const tailLines = url.searchParams.get('tailLines');
      const lines = this.kubelet
        ? await this.kubelet
            .logs(
              pod.metadata.uid,
              url.searchParams.get('container') ?? pod.spec.containers[0].name,
              tailLines === null ? undefined : Number(tailLines),
              url.searchParams.get('previous') === 'true',
            )
            .then((text) => text?.split('\n').slice(0, -1))
        : this.podLogs.get(pod.metadata.uid);
      if (!lines) {
        const container = url.searchParams.get('container') ?? pod.spec.containers[0].name;
        const waiting = (pod.status?.containerStatuses ?? []).find((c: Obj) => c.name === container)
          ?.state?.waiting;
        throw new HttpError(
          400,
          'BadRequest',
          `container "${container}" in pod "${pod.metadata.name}" is waiting to start: ${waiting?.reason === 'ImagePullBackOff' || waiting?.reason === 'ErrImagePull' ? 'trying and failing to pull image' : (waiting?.reason ?? 'ContainerCreating')}`,
        );
      }
      const tail = Number(url.searchParams.get('tailLines') ?? lines.length);
      res.writeHead(200, { 'content-type': 'text/plain' });
      return void res.end(
        lines
          .slice(-tail)
          .map((l) => `${l}\n`)
          .join(''),
      );
    }
    if (sub && sub !== 'status')
      throw new HttpError(404, 'NotFound', 'the server could not find the requested resource');

    if (req.method === 'GET' && objectName === undefined) {
      if (isWatch(url.searchParams))
        return this.watch(type, objectNamespace, url.searchParams, req, res);
      return this.sendList(type, objectNamespace, url.searchParams, req, res);
    }
    if (req.method === 'GET')
      return this.sendObject(
        res,
        this.require(type, objectNamespace, objectName!),
        req.headers.accept,
        type,
      );
    if (req.method === 'PATCH' && objectName) {
      const contentType = (req.headers['content-type'] ?? '').split(';')[0].trim();
      const dryRun = url.searchParams.get('dryRun') === 'All';
      if (contentType === 'application/apply-patch+yaml') {
        const manager = url.searchParams.get('fieldManager');
        if (!manager)
          throw new HttpError(
            422,
            'Invalid',
            'PatchOptions.meta.k8s.io "" is invalid: fieldManager: Required value: is required for apply patch',
          );
        let applied: Obj;
        try {
          applied = parse(body) as Obj;
        } catch (error) {
          throw new HttpError(400, 'BadRequest', `error decoding YAML: ${String(error)}`);
        }
        const force = url.searchParams.get('force') === 'true';
        const result = this.serverSideApply(
          type,
          objectNamespace,
          objectName,
          applied,
          manager,
          force,
          dryRun,
        );
        return send(res, 200, result);
      }
      if (
        contentType === 'application/json-patch+json' ||
        contentType === 'application/merge-patch+json'
      ) {
        const current = this.require(type, objectNamespace, objectName);
        let next: Obj;
        const patch = JSON.parse(body);
        if (contentType === 'application/json-patch+json') next = applyJsonPatch(current, patch);
        else next = mergePatch(current, patch);
        const result = this.update(
          type,
          next,
          url.searchParams.get('fieldManager') ?? 'unknown',
          dryRun,
          sub === 'status',
        );
        return send(res, 200, result);
      }
      throw new HttpError(
        415,
        'UnsupportedMediaType',
        `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml`,
      );
    }
    if (req.method === 'DELETE' && objectName) {
      const current = this.require(type, objectNamespace, objectName);
      this.remove(type, current);
      return send(res, 200, {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Success',
        details: { name: objectName, kind: type.plural },
      });
    }
    throw new HttpError(
      405,
      'MethodNotAllowed',
      `the server does not allow this method on the requested resource`,
    );
  }

  /** Authenticates a request and records it; returns the user. */
  private admit(req: http.IncomingMessage, url: URL): string {
    const user = this.authenticate(req);
    this.requests.push({
      method: req.method ?? 'GET',
      path: `${url.pathname}${url.search}`,
      user,
      accept: req.headers.accept,
      contentType: req.headers['content-type'],
    });
    return user;
  }

  private authenticate(req: http.IncomingMessage): string {
    const header = req.headers.authorization ?? '';
    const unauthorized = () => new HttpError(401, 'Unauthorized', 'Unauthorized');
    if (!header.startsWith('Bearer ')) throw unauthorized();
    const token = header.slice(7);
    this.bearerTokens.add(token);
    if (this.options.staticTokens?.includes(token)) return 'clusterAdmin';
    if (!this.options.trustedKeys) throw unauthorized();
    const verified = verifyJwt(token, this.options.trustedKeys());
    if ('error' in verified) throw unauthorized();
    const claims = verified.claims;
    const audience = this.options.audience ?? AKS_SERVER_APP_ID;
    if (claims.aud !== audience && claims.aud !== `api://${audience}`) throw unauthorized();
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) throw unauthorized();
    return String(claims.oid ?? claims.sub);
  }

  private authorize(
    verb: string,
    type: ResourceType,
    namespace: string | undefined,
    name: string | undefined,
    user: string,
    sub?: string,
  ): void {
    const resource = sub ? `${type.plural}/${sub}` : type.plural;
    if (!this.forbidden.has(`${verb} ${resource}`)) return;
    const what = name
      ? `${type.plural}${type.group ? `.${type.group}` : ''} "${name}"`
      : `${type.plural}${type.group ? `.${type.group}` : ''}`;
    throw new HttpError(
      403,
      'Forbidden',
      `${what} is forbidden: User "${user}" cannot ${verb} resource "${resource}" in API group "${type.group}"${namespace ? ` in the namespace "${namespace}"` : ' at the cluster scope'}`,
      { name, group: type.group, kind: type.plural },
    );
  }

  private groupList(): Obj {
    const groups = [...new Set(RESOURCES.filter((r) => r.group).map((r) => r.group))];
    return {
      kind: 'APIGroupList',
      apiVersion: 'v1',
      groups: groups.map((group) => {
        const versions = [
          ...new Set(RESOURCES.filter((r) => r.group === group).map((r) => r.version)),
        ];
        const entries = versions.map((version) => ({
          groupVersion: `${group}/${version}`,
          version,
        }));
        return { name: group, versions: entries, preferredVersion: entries[0] };
      }),
    };
  }

  // ---- reads -------------------------------------------------------------------------------

  private collection(type: ResourceType, namespace?: string): Obj[] {
    const prefix = `${type.group}/${type.plural}|${namespace ?? ''}`;
    return [...this.objects.entries()]
      .filter(([key]) =>
        namespace === undefined
          ? key.startsWith(`${type.group}/${type.plural}|`)
          : key.startsWith(`${prefix}|`),
      )
      .map(([, object]) => object)
      .sort((a, b) =>
        `${a.metadata.namespace}/${a.metadata.name}`.localeCompare(
          `${b.metadata.namespace}/${b.metadata.name}`,
        ),
      );
  }

  private require(type: ResourceType, namespace: string | undefined, name: string): Obj {
    const object = this.objects.get(keyOf(type, namespace, name));
    if (!object) throw notFound(type, name);
    return object;
  }

  private sendObject(
    res: http.ServerResponse,
    object: Obj,
    accept: string | undefined,
    type: ResourceType,
  ): void {
    if (wantsTable(accept)) return send(res, 200, this.table(type, [object], String(this.rv)));
    send(res, 200, object);
  }

  private sendList(
    type: ResourceType,
    namespace: string | undefined,
    query: URLSearchParams,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    const items = this.collection(type, namespace).filter((object) => selects(object, query));
    if (wantsTable(req.headers.accept))
      return send(res, 200, this.table(type, items, String(this.rv)));
    send(res, 200, {
      kind: `${type.kind}List`,
      apiVersion: groupVersion(type),
      metadata: { resourceVersion: String(this.rv) },
      items: items.map((item) => {
        // List items do not repeat apiVersion and kind.
        const rest = { ...item };
        delete rest.apiVersion;
        delete rest.kind;
        return rest;
      }),
    });
  }

  private watch(
    type: ResourceType,
    namespace: string | undefined,
    query: URLSearchParams,
    req: http.IncomingMessage,
    res: http.ServerResponse,
  ): void {
    const from = Number(query.get('resourceVersion') || '0');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // The API server answers a watch at once; clients wait for these headers before events.
    res.flushHeaders();
    const write = (event: StoredEvent) => {
      if (event.resource !== type) return;
      if (namespace !== undefined && event.object.metadata.namespace !== namespace) return;
      if (!selects(event.object, query)) return;
      res.write(`${JSON.stringify({ type: event.type, object: event.object })}\n`);
    };
    if (from > 0 && from < this.compactedBefore) {
      // etcd compacted the history this watch would start from: the client must list again.
      const status = {
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message: `too old resource version: ${from} (${this.compactedBefore})`,
        reason: 'Expired',
        code: 410,
      };
      res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    if (from > 0) for (const event of this.events) if (event.rv > from) write(event);
    if (from === 0) {
      for (const object of this.collection(type, namespace))
        write({ rv: 0, type: 'ADDED', resource: type, object });
    }
    const watcher: Watcher = { resource: type, namespace, send: write, end: () => res.end() };
    this.watchers.add(watcher);
    const seconds = Number(query.get('timeoutSeconds') ?? '1800');
    const timer = setTimeout(() => res.end(), seconds * 1000);
    const close = () => {
      clearTimeout(timer);
      this.watchers.delete(watcher);
    };
    req.on('close', close);
    res.on('close', close);
  }

  private table(type: ResourceType, items: Obj[], resourceVersion: string): Obj {
    const age = (object: Obj) =>
      formatAge(Date.now() - Date.parse(object.metadata.creationTimestamp));
    let columns: Array<{
      name: string;
      type: string;
      format?: string;
      description: string;
      priority: number;
    }>;
    let cells: (object: Obj) => unknown[];
    if (type.kind === 'Deployment') {
      columns = [
        {
          name: 'Name',
          type: 'string',
          format: 'name',
          description: 'Name must be unique within a namespace.',
          priority: 0,
        },
        {
          name: 'Ready',
          type: 'string',
          description: 'Number of the pod with ready state',
          priority: 0,
        },
        {
          name: 'Up-to-date',
          type: 'string',
          description:
            'Total number of non-terminated pods targeted by this deployment that have the desired template spec.',
          priority: 0,
        },
        {
          name: 'Available',
          type: 'string',
          description:
            'Total number of available pods (ready for at least minReadySeconds) targeted by this deployment.',
          priority: 0,
        },
        {
          name: 'Age',
          type: 'string',
          description:
            'CreationTimestamp is a timestamp representing the server time when this object was created.',
          priority: 0,
        },
        {
          name: 'Containers',
          type: 'string',
          description: 'Names of each container in the template.',
          priority: 1,
        },
        {
          name: 'Images',
          type: 'string',
          description: 'Images referenced by each container in the template.',
          priority: 1,
        },
        { name: 'Selector', type: 'string', description: 'Label selector for pods.', priority: 1 },
      ];
      cells = (d) => [
        d.metadata.name,
        `${d.status?.readyReplicas ?? 0}/${d.spec.replicas ?? 1}`,
        d.status?.updatedReplicas ?? 0,
        d.status?.availableReplicas ?? 0,
        age(d),
        d.spec.template.spec.containers.map((c: Obj) => c.name).join(','),
        d.spec.template.spec.containers.map((c: Obj) => c.image).join(','),
        Object.entries(d.spec.selector?.matchLabels ?? {})
          .map(([k, v]) => `${k}=${v}`)
          .join(','),
      ];
    } else if (type.kind === 'Pod') {
      columns = [
        {
          name: 'Name',
          type: 'string',
          format: 'name',
          description: 'Name must be unique within a namespace.',
          priority: 0,
        },
        {
          name: 'Ready',
          type: 'string',
          description: 'The aggregate readiness state of this pod for accepting traffic.',
          priority: 0,
        },
        {
          name: 'Status',
          type: 'string',
          description: 'The aggregate status of the containers in this pod.',
          priority: 0,
        },
        {
          name: 'Restarts',
          type: 'string',
          description: 'The number of times the containers in this pod have been restarted.',
          priority: 0,
        },
        {
          name: 'Age',
          type: 'string',
          description:
            'CreationTimestamp is a timestamp representing the server time when this object was created.',
          priority: 0,
        },
      ];
      cells = (p) => {
        const statuses: Obj[] = p.status?.containerStatuses ?? [];
        const waiting = statuses.find((s) => s.state?.waiting)?.state.waiting.reason;
        return [
          p.metadata.name,
          `${statuses.filter((s) => s.ready).length}/${p.spec.containers.length}`,
          waiting ?? p.status?.phase ?? 'Pending',
          statuses.reduce((n, s) => n + (s.restartCount ?? 0), 0),
          age(p),
        ];
      };
    } else {
      columns = [
        {
          name: 'Name',
          type: 'string',
          format: 'name',
          description: 'Name must be unique within a namespace.',
          priority: 0,
        },
        {
          name: 'Created At',
          type: 'date',
          description:
            'CreationTimestamp is a timestamp representing the server time when this object was created.',
          priority: 0,
        },
      ];
      cells = (o) => [o.metadata.name, o.metadata.creationTimestamp];
    }
    return {
      kind: 'Table',
      apiVersion: 'meta.k8s.io/v1',
      metadata: { resourceVersion },
      columnDefinitions: columns,
      rows: items.map((item) => ({
        cells: cells(item),
        object: {
          kind: 'PartialObjectMetadata',
          apiVersion: 'meta.k8s.io/v1',
          metadata: item.metadata,
        },
      })),
    };
  }

  // ---- writes ------------------------------------------------------------------------------

  /**
   * Server-side apply: the manager owns exactly the fields it applied (lists are owned whole);
   * fields it owned before and no longer applies are removed unless another manager owns
   * them; a field another manager owns with a different value is a conflict unless forced.
   */
  private serverSideApply(
    type: ResourceType,
    namespace: string | undefined,
    name: string,
    applied: Obj,
    manager: string,
    force: boolean,
    dryRun: boolean,
  ): Obj {
    if (!applied || typeof applied !== 'object')
      throw new HttpError(400, 'BadRequest', 'the body must be an object');
    if (applied.apiVersion !== groupVersion(type) || applied.kind !== type.kind) {
      throw new HttpError(
        400,
        'BadRequest',
        `the API version in the data (${applied.apiVersion}) does not match the expected API version (${groupVersion(type)}) or kind ${applied.kind}`,
      );
    }
    if (applied.metadata?.name !== name)
      throw new HttpError(
        400,
        'BadRequest',
        'the name of the object does not match the name on the URL',
      );
    if (type.namespaced) {
      if (applied.metadata.namespace !== undefined && applied.metadata.namespace !== namespace) {
        throw new HttpError(
          400,
          'BadRequest',
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      if (!this.objects.has(keyOf(RESOURCES[0], undefined, namespace!)))
        throw notFound(RESOURCES[0], namespace!);
    }
    delete applied.status;
    const key = keyOf(type, namespace, name);
    const existing = this.objects.get(key);
    const owners =
      this.managed.get(key) ?? new Map<string, { apiVersion: string; paths: Set<string> }>();
    const paths = new Set(leafPaths(applied));
    const conflicts: Array<{ manager: string; path: string; apiVersion: string }> = [];
    for (const [other, owned] of owners) {
      if (other === manager) continue;
      for (const path of paths) {
        if (
          owned.paths.has(path) &&
          existing &&
          !isDeepStrictEqual(valueAt(existing, path), valueAt(applied, path))
        ) {
          conflicts.push({ manager: other, path, apiVersion: owned.apiVersion });
        }
      }
    }
    if (conflicts.length > 0 && !force) {
      const text = conflicts.map(
        (c) => `conflict with "${c.manager}" using ${c.apiVersion}: ${showPath(c.path)}`,
      );
      throw new HttpError(
        409,
        'Conflict',
        `Apply failed with ${conflicts.length} conflict${conflicts.length > 1 ? 's' : ''}: ${text.join('\n')}`,
        {
          name,
          group: type.group,
          kind: type.plural,
          causes: conflicts.map((c) => ({
            reason: 'FieldManagerConflict',
            message: `conflict with "${c.manager}" using ${c.apiVersion}`,
            field: showPath(c.path),
          })),
        },
      );
    }
    const next: Obj = existing
      ? structuredClone(existing)
      : { apiVersion: applied.apiVersion, kind: applied.kind, metadata: { name } };
    const previous = owners.get(manager)?.paths ?? new Set<string>();
    for (const path of previous) {
      const ownedElsewhere = [...owners].some(
        ([other, owned]) => other !== manager && owned.paths.has(path),
      );
      if (!paths.has(path) && !ownedElsewhere) removeAt(next, path);
    }
    for (const path of paths) setAt(next, path, structuredClone(valueAt(applied, path)));
    if (type.namespaced) next.metadata.namespace = namespace;
    const newOwners = new Map(
      [...owners].map(([m, o]) => [m, { apiVersion: o.apiVersion, paths: new Set(o.paths) }]),
    );
    for (const conflict of conflicts) newOwners.get(conflict.manager)?.paths.delete(conflict.path);
    newOwners.set(manager, { apiVersion: applied.apiVersion, paths });
    return this.commit(type, next, existing, newOwners, dryRun);
  }

  /** A full update (from a JSON or merge patch); the manager takes the fields it changed. */
  private update(
    type: ResourceType,
    next: Obj,
    manager: string,
    dryRun: boolean,
    statusOnly: boolean,
  ): Obj {
    const key = keyOf(type, next.metadata.namespace, next.metadata.name);
    const existing = this.objects.get(key)!;
    if (statusOnly) next = { ...existing, status: next.status };
    else next.status = existing.status;
    const owners = new Map(
      [...(this.managed.get(key) ?? new Map())].map(([m, o]) => [
        m,
        { apiVersion: o.apiVersion, paths: new Set<string>(o.paths) },
      ]),
    );
    if (!statusOnly) {
      const changed = leafPaths(next).filter(
        (path) => !isDeepStrictEqual(valueAt(existing, path), valueAt(next, path)),
      );
      for (const [, owned] of owners) for (const path of changed) owned.paths.delete(path);
      const mine = owners.get(manager) ?? { apiVersion: next.apiVersion, paths: new Set<string>() };
      changed.forEach((path) => mine.paths.add(path));
      owners.set(manager, mine);
    }
    return this.commit(type, next, existing, owners, dryRun);
  }

  private commit(
    type: ResourceType,
    next: Obj,
    existing: Obj | undefined,
    owners: Map<string, { apiVersion: string; paths: Set<string> }>,
    dryRun: boolean,
  ): Obj {
    this.defaults(type, next);
    this.validate(type, next, existing);
    const metadata = next.metadata;
    metadata.managedFields = [...owners]
      .filter(([, o]) => o.paths.size > 0)
      .map(([manager, o]) => ({
        manager,
        operation: 'Apply',
        apiVersion: o.apiVersion,
        time:
          existing?.metadata.managedFields?.find((f: Obj) => f.manager === manager)?.time ??
          new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
        fieldsType: 'FieldsV1',
        fieldsV1: fieldsV1(o.paths),
      }));
    if (existing && isDeepStrictEqual(stripVolatile(existing), stripVolatile(next)))
      return structuredClone(existing);
    if (existing) {
      metadata.uid = existing.metadata.uid;
      metadata.creationTimestamp = existing.metadata.creationTimestamp;
      const specChanged = !isDeepStrictEqual(withoutMeta(existing), withoutMeta(next));
      metadata.generation = (existing.metadata.generation ?? 1) + (specChanged ? 1 : 0);
    } else {
      metadata.uid = randomUUID();
      metadata.creationTimestamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      metadata.generation = 1;
    }
    if (dryRun) {
      metadata.resourceVersion = existing?.metadata.resourceVersion ?? '';
      return next;
    }
    this.managed.set(keyOf(type, metadata.namespace, metadata.name), owners);
    return structuredClone(this.store(type, next, existing ? 'MODIFIED' : 'ADDED'));
  }

  private defaults(type: ResourceType, object: Obj): void {
    const spec = object.spec;
    const podSpec = (template: Obj | undefined) => {
      if (!template?.spec) return;
      template.spec.restartPolicy ??=
        type.kind === 'Job' || type.kind === 'CronJob' ? 'Never' : 'Always';
      template.spec.dnsPolicy ??= 'ClusterFirst';
      template.spec.terminationGracePeriodSeconds ??= 30;
      for (const c of template.spec.containers ?? []) {
        c.imagePullPolicy ??= /:latest$|^[^:@]+$/.test(c.image ?? '') ? 'Always' : 'IfNotPresent';
        c.terminationMessagePath ??= '/dev/termination-log';
      }
    };
    switch (type.kind) {
      case 'Deployment':
        spec.replicas ??= 1;
        spec.revisionHistoryLimit ??= 10;
        spec.progressDeadlineSeconds ??= 600;
        spec.strategy ??= {
          type: 'RollingUpdate',
          rollingUpdate: { maxSurge: '25%', maxUnavailable: '25%' },
        };
        podSpec(spec.template);
        break;
      case 'StatefulSet':
        spec.replicas ??= 1;
        spec.podManagementPolicy ??= 'OrderedReady';
        spec.updateStrategy ??= { type: 'RollingUpdate', rollingUpdate: { partition: 0 } };
        podSpec(spec.template);
        break;
      case 'DaemonSet':
        spec.updateStrategy ??= {
          type: 'RollingUpdate',
          rollingUpdate: { maxSurge: 0, maxUnavailable: 1 },
        };
        podSpec(spec.template);
        break;
      case 'Job':
        spec.backoffLimit ??= 6;
        spec.completions ??= 1;
        spec.parallelism ??= 1;
        podSpec(spec.template);
        break;
      case 'Service':
        spec.type ??= 'ClusterIP';
        spec.sessionAffinity ??= 'None';
        if (!spec.clusterIP) {
          spec.clusterIP = `10.0.${Math.floor(this.clusterIpCounter / 250)}.${this.clusterIpCounter % 250}`;
          this.clusterIpCounter++;
          spec.clusterIPs = [spec.clusterIP];
        }
        for (const port of spec.ports ?? []) {
          port.protocol ??= 'TCP';
          port.targetPort ??= port.port;
        }
        break;
      case 'Namespace':
        object.status ??= { phase: 'Active' };
        object.metadata.labels = {
          ...object.metadata.labels,
          'kubernetes.io/metadata.name': object.metadata.name,
        };
        break;
    }
  }

  private validate(type: ResourceType, object: Obj, existing: Obj | undefined): void {
    const invalid = (field: string, message: string) =>
      new HttpError(
        422,
        'Invalid',
        `${type.kind} "${object.metadata.name}" is invalid: ${field}: ${message}`,
        {
          name: object.metadata.name,
          group: type.group,
          kind: type.kind,
          causes: [{ reason: 'FieldValueInvalid', message, field }],
        },
      );
    if (['Deployment', 'StatefulSet', 'DaemonSet', 'ReplicaSet'].includes(type.kind)) {
      const selector = object.spec?.selector?.matchLabels;
      if (!selector) throw invalid('spec.selector', 'Required value');
      const labels = object.spec?.template?.metadata?.labels ?? {};
      if (!Object.entries(selector).every(([k, v]) => labels[k] === v)) {
        throw invalid(
          'spec.template.metadata.labels',
          `Invalid value: ${JSON.stringify(labels)}: \`selector\` does not match template \`labels\``,
        );
      }
      if (!object.spec?.template?.spec?.containers?.length)
        throw invalid('spec.template.spec.containers', 'Required value');
      if (existing && !isDeepStrictEqual(existing.spec.selector, object.spec.selector)) {
        throw invalid(
          'spec.selector',
          `Invalid value: ${JSON.stringify(object.spec.selector)}: field is immutable`,
        );
      }
    }
    if (
      type.kind === 'Job' &&
      existing &&
      !isDeepStrictEqual(existing.spec.template, object.spec.template)
    ) {
      throw invalid('spec.template', 'Invalid value: field is immutable');
    }
  }

  /** Stores an object with a new resourceVersion, tells watchers, and runs the controllers. */
  private store(type: ResourceType, object: Obj, eventType: 'ADDED' | 'MODIFIED' = 'ADDED'): Obj {
    this.rv += 1;
    object.metadata.resourceVersion = String(this.rv);
    object.metadata.uid ??= randomUUID();
    object.metadata.creationTimestamp ??= new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    this.objects.set(keyOf(type, object.metadata.namespace, object.metadata.name), object);
    this.emit({ rv: this.rv, type: eventType, resource: type, object: structuredClone(object) });
    this.schedule(() => this.reconcile(type, object.metadata.namespace, object.metadata.name), 0);
    return object;
  }

  private remove(type: ResourceType, object: Obj): void {
    this.rv += 1;
    const key = keyOf(type, object.metadata.namespace, object.metadata.name);
    if (type.kind === 'Pod') this.kubelet?.forget(object.metadata.uid);
    if (type.kind === 'Service') this.balancers.release(key);
    this.objects.delete(key);
    this.managed.delete(key);
    this.emit({
      rv: this.rv,
      type: 'DELETED',
      resource: type,
      object: {
        ...structuredClone(object),
        metadata: { ...object.metadata, resourceVersion: String(this.rv) },
      },
    });
    // Owned objects go too (foreground garbage collection, simplified).
    for (const [childKey, child] of [...this.objects]) {
      if (
        (child.metadata.ownerReferences ?? []).some((ref: Obj) => ref.uid === object.metadata.uid)
      ) {
        const childType = RESOURCES.find((r) => childKey.startsWith(`${r.group}/${r.plural}|`))!;
        this.remove(childType, child);
      }
    }
  }

  private emit(event: StoredEvent): void {
    this.events.push(event);
    for (const watcher of this.watchers) watcher.send(event);
  }

  /** Writes status (or anything) as a controller would: a MODIFIED event, no generation bump. */
  private write(type: ResourceType, object: Obj): void {
    const current = this.objects.get(keyOf(type, object.metadata.namespace, object.metadata.name));
    if (!current || isDeepStrictEqual(current, object)) return;
    this.rv += 1;
    object.metadata.resourceVersion = String(this.rv);
    this.objects.set(keyOf(type, object.metadata.namespace, object.metadata.name), object);
    this.emit({ rv: this.rv, type: 'MODIFIED', resource: type, object: structuredClone(object) });
    // Controllers of the owner react to their children's changes.
    for (const ref of object.metadata.ownerReferences ?? []) {
      const ownerType = RESOURCES.find((r) => r.kind === ref.kind);
      if (ownerType)
        this.schedule(() => this.reconcile(ownerType, object.metadata.namespace, ref.name), 0);
    }
  }

  private schedule(fn: () => void, ms: number): void {
    if (this.stopped) return;
    const timer = setTimeout(() => {
      this.timers.delete(timer);
      if (!this.stopped) fn();
    }, ms);
    this.timers.add(timer);
  }

  // ---- controllers -------------------------------------------------------------------------

  private reconcile(type: ResourceType, namespace: string | undefined, name: string): void {
    const object = this.objects.get(keyOf(type, namespace, name));
    if (!object) return;
    switch (type.kind) {
      case 'Deployment':
        return this.reconcileDeployment(object);
      case 'ReplicaSet':
        return this.reconcileReplicaSet(object);
      case 'StatefulSet':
        return this.reconcileStatefulSet(object);
      case 'DaemonSet':
        return this.reconcileDaemonSet(object);
      case 'Job':
        return this.reconcileJob(object);
      case 'Service':
        return this.reconcileService(object);
    }
  }

  private owned(kind: string, owner: Obj): Obj[] {
    return this.list(kind, owner.metadata.namespace).filter((child) =>
      (child.metadata.ownerReferences ?? []).some((ref: Obj) => ref.uid === owner.metadata.uid),
    );
  }

  private reconcileDeployment(deployment: Obj): void {
    const rsType = resourceOf('ReplicaSet');
    const spec = deployment.spec;
    const hash = templateHash(spec.template);
    const sets = this.owned('ReplicaSet', deployment);
    const revisionOf = (set: Obj) =>
      Number(set.metadata.annotations?.['deployment.kubernetes.io/revision'] ?? 0);
    const maxRevision = Math.max(0, ...sets.map(revisionOf));
    let current = sets.find((set) => set.metadata.labels?.['pod-template-hash'] === hash);
    const now = Date.now();
    if (!current) {
      const labels = { ...spec.template.metadata?.labels, 'pod-template-hash': hash };
      current = this.store(rsType, {
        apiVersion: 'apps/v1',
        kind: 'ReplicaSet',
        metadata: {
          name: `${deployment.metadata.name}-${hash}`,
          namespace: deployment.metadata.namespace,
          labels,
          annotations: {
            'deployment.kubernetes.io/revision': String(maxRevision + 1),
            'deployment.kubernetes.io/desired-replicas': String(spec.replicas),
          },
          ownerReferences: [ownerReference(deployment)],
          generation: 1,
        },
        spec: {
          replicas: spec.replicas,
          selector: { matchLabels: { ...spec.selector.matchLabels, 'pod-template-hash': hash } },
          template: { ...spec.template, metadata: { ...spec.template.metadata, labels } },
        },
        status: { replicas: 0 },
      });
      this.progressStart.set(deployment.metadata.uid, now);
      return;
    }
    if (revisionOf(current) < maxRevision) {
      // Rolling back to an older template reuses its ReplicaSet under a new revision.
      const bumped = structuredClone(current);
      bumped.metadata.annotations['deployment.kubernetes.io/revision'] = String(maxRevision + 1);
      this.write(rsType, bumped);
      this.progressStart.set(deployment.metadata.uid, now);
      return;
    }
    if (current.spec.replicas !== spec.replicas) {
      const scaled = structuredClone(current);
      scaled.spec.replicas = spec.replicas;
      scaled.metadata.generation += 1;
      this.write(rsType, scaled);
      this.schedule(
        () => this.reconcile(rsType, scaled.metadata.namespace, scaled.metadata.name),
        0,
      );
    }
    const old = sets.filter((set) => set.metadata.uid !== current!.metadata.uid);
    const currentAvailable = current.status?.availableReplicas ?? 0;
    const complete = currentAvailable >= spec.replicas;
    // New pods first; old ReplicaSets scale down once the new one is fully available.
    if (complete) {
      for (const set of old.filter((s) => s.spec.replicas !== 0)) {
        const scaled = structuredClone(set);
        scaled.spec.replicas = 0;
        scaled.metadata.generation += 1;
        this.write(rsType, scaled);
        this.schedule(
          () => this.reconcile(rsType, scaled.metadata.namespace, scaled.metadata.name),
          0,
        );
      }
    }
    const all = [current, ...old];
    const sum = (field: string) => all.reduce((n, set) => n + (set.status?.[field] ?? 0), 0);
    const available = sum('availableReplicas');
    const started = this.progressStart.get(deployment.metadata.uid) ?? now;
    const deadlineMs = spec.progressDeadlineSeconds * 1000;
    const oldReplicas = old.reduce((n, set) => n + (set.status?.replicas ?? 0), 0);
    const done = complete && oldReplicas === 0;
    let progressing: Obj;
    if (done)
      progressing = {
        type: 'Progressing',
        status: 'True',
        reason: 'NewReplicaSetAvailable',
        message: `ReplicaSet "${current.metadata.name}" has successfully progressed.`,
      };
    else if (now - started > deadlineMs)
      progressing = {
        type: 'Progressing',
        status: 'False',
        reason: 'ProgressDeadlineExceeded',
        message: `ReplicaSet "${current.metadata.name}" has timed out progressing.`,
      };
    else {
      progressing = {
        type: 'Progressing',
        status: 'True',
        reason: 'ReplicaSetUpdated',
        message: `ReplicaSet "${current.metadata.name}" is progressing.`,
      };
      this.schedule(
        () =>
          this.reconcile(
            resourceOf('Deployment'),
            deployment.metadata.namespace,
            deployment.metadata.name,
          ),
        deadlineMs - (now - started) + 10,
      );
    }
    const previous = deployment.status?.conditions ?? [];
    const keepTimes = (condition: Obj) => {
      const before = previous.find((c: Obj) => c.type === condition.type);
      const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
      const same =
        before && before.status === condition.status && before.reason === condition.reason;
      return {
        ...condition,
        lastUpdateTime: same ? before.lastUpdateTime : stamp,
        lastTransitionTime: before?.status === condition.status ? before.lastTransitionTime : stamp,
      };
    };
    const next = structuredClone(deployment);
    next.metadata.annotations = {
      ...next.metadata.annotations,
      'deployment.kubernetes.io/revision':
        current.metadata.annotations['deployment.kubernetes.io/revision'],
    };
    next.status = {
      observedGeneration: deployment.metadata.generation,
      replicas: sum('replicas'),
      updatedReplicas: current.status?.replicas ?? 0,
      readyReplicas: sum('readyReplicas'),
      availableReplicas: available,
      unavailableReplicas: Math.max(0, sum('replicas') - available),
      conditions: [
        keepTimes(
          available >= spec.replicas
            ? {
                type: 'Available',
                status: 'True',
                reason: 'MinimumReplicasAvailable',
                message: 'Deployment has minimum availability.',
              }
            : {
                type: 'Available',
                status: 'False',
                reason: 'MinimumReplicasUnavailable',
                message: 'Deployment does not have minimum availability.',
              },
        ),
        keepTimes(progressing),
      ],
    };
    for (const field of [
      'replicas',
      'updatedReplicas',
      'readyReplicas',
      'availableReplicas',
      'unavailableReplicas',
    ])
      if (next.status[field] === 0) delete next.status[field];
    this.write(resourceOf('Deployment'), next);
  }

  private readonly progressStart = new Map<string, number>();

  private reconcileReplicaSet(set: Obj): void {
    const pods = this.owned('Pod', set);
    const desired = set.spec.replicas ?? 1;
    for (let i = pods.length; i < desired; i++)
      this.createPod(set, set.spec.template, `${set.metadata.name}-${suffix()}`, {});
    for (const pod of pods.slice(desired)) this.remove(resourceOf('Pod'), pod);
    const kept = pods.slice(0, desired);
    const ready = kept.filter(podReady).length;
    const next = structuredClone(set);
    next.status = {
      replicas: kept.length,
      fullyLabeledReplicas: kept.length,
      readyReplicas: ready,
      availableReplicas: ready,
      observedGeneration: set.metadata.generation,
    };
    for (const field of ['readyReplicas', 'availableReplicas', 'fullyLabeledReplicas'])
      if (next.status[field] === 0) delete next.status[field];
    this.write(resourceOf('ReplicaSet'), next);
  }

  private reconcileStatefulSet(set: Obj): void {
    const revision = `${set.metadata.name}-${templateHash(set.spec.template)}`;
    const desired = set.spec.replicas ?? 1;
    const pods = this.owned('Pod', set);
    for (const pod of pods) {
      const ordinal = Number(pod.metadata.name.slice(set.metadata.name.length + 1));
      if (ordinal >= desired || pod.metadata.labels['controller-revision-hash'] !== revision)
        this.remove(resourceOf('Pod'), pod);
    }
    const live = this.owned('Pod', set);
    for (let i = 0; i < desired; i++) {
      if (!live.some((pod) => pod.metadata.name === `${set.metadata.name}-${i}`)) {
        this.createPod(set, set.spec.template, `${set.metadata.name}-${i}`, {
          'controller-revision-hash': revision,
          'statefulset.kubernetes.io/pod-name': `${set.metadata.name}-${i}`,
        });
      }
    }
    const ready = live.filter(podReady).length;
    const next = structuredClone(set);
    next.status = {
      observedGeneration: set.metadata.generation,
      replicas: live.length,
      readyReplicas: ready,
      currentReplicas: ready === desired ? desired : live.length,
      updatedReplicas: live.filter(
        (p) => p.metadata.labels['controller-revision-hash'] === revision,
      ).length,
      currentRevision: ready === desired ? revision : (set.status?.currentRevision ?? revision),
      updateRevision: revision,
      availableReplicas: ready,
    };
    this.write(resourceOf('StatefulSet'), next);
  }

  private reconcileDaemonSet(set: Obj): void {
    const nodes = this.options.nodes ?? 2;
    const generation = String(set.metadata.generation);
    const pods = this.owned('Pod', set);
    for (const pod of pods)
      if (pod.metadata.labels['pod-template-generation'] !== generation)
        this.remove(resourceOf('Pod'), pod);
    const live = this.owned('Pod', set);
    for (let i = live.length; i < nodes; i++) {
      this.createPod(set, set.spec.template, `${set.metadata.name}-${suffix()}`, {
        'pod-template-generation': generation,
        'controller-revision-hash': templateHash(set.spec.template),
      });
    }
    const ready = live.filter(podReady).length;
    const next = structuredClone(set);
    next.status = {
      observedGeneration: set.metadata.generation,
      desiredNumberScheduled: nodes,
      currentNumberScheduled: live.length,
      updatedNumberScheduled: live.length,
      numberReady: ready,
      numberAvailable: ready,
      numberMisscheduled: 0,
    };
    this.write(resourceOf('DaemonSet'), next);
  }

  private reconcileJob(job: Obj): void {
    const pods = this.owned('Pod', job);
    if (pods.length === 0 && !job.status?.conditions) {
      this.createPod(job, job.spec.template, `${job.metadata.name}-${suffix()}`, {
        'job-name': job.metadata.name,
      });
      return;
    }
    const succeeded = pods.filter((p) => p.status?.phase === 'Succeeded').length;
    const crashing = pods.filter((p) =>
      (p.status?.containerStatuses ?? []).some(
        (s: Obj) => s.restartCount > 0 || s.state?.terminated?.exitCode > 0,
      ),
    ).length;
    const next = structuredClone(job);
    const stamp = new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    next.status = {
      startTime: job.status?.startTime ?? stamp,
      active: pods.length - succeeded,
      succeeded,
      ready: pods.filter(podReady).length,
    };
    if (succeeded >= (job.spec.completions ?? 1)) {
      next.status.conditions = [
        { type: 'Complete', status: 'True', lastProbeTime: stamp, lastTransitionTime: stamp },
      ];
      next.status.completionTime = stamp;
      next.status.active = 0;
    } else if (crashing > 0) {
      next.status.failed = crashing;
      next.status.conditions = [
        {
          type: 'Failed',
          status: 'True',
          reason: 'BackoffLimitExceeded',
          message: 'Job has reached the specified backoff limit',
          lastProbeTime: stamp,
          lastTransitionTime: stamp,
        },
      ];
    }
    this.write(resourceOf('Job'), next);
  }

  private reconcileService(service: Obj): void {
    if (
      service.spec.type !== 'LoadBalancer' ||
      service.status?.loadBalancer?.ingress?.length ||
      this.options.loadBalancerDelayMs === undefined
    )
      return;
    if (this.kubelet) return this.loopbackLoadBalancer(service);
    this.schedule(() => {
      const current = this.objects.get(
        keyOf(resourceOf('Service'), service.metadata.namespace, service.metadata.name),
      );
      if (!current) return;
      const next = structuredClone(current);
      next.status = {
        loadBalancer: {
          ingress: [
            { ip: `20.61.${randomBytes(1)[0]}.${1 + (randomBytes(1)[0] % 250)}`, ipMode: 'VIP' },
          ],
        },
      };
      this.write(resourceOf('Service'), next);
    }, this.options.loadBalancerDelayMs);
  }

  /** A LoadBalancer Service of pods that really run: a loopback address forwarding to them. */
  private loopbackLoadBalancer(service: Obj): void {
    const key = keyOf(resourceOf('Service'), service.metadata.namespace, service.metadata.name);
    const backends = (targetPort: number | string) => {
      const current = this.objects.get(key);
      if (!current?.spec.selector) return [];
      const selector = Object.entries(current.spec.selector as Record<string, string>);
      return this.collection(resourceOf('Pod'), current.metadata.namespace)
        .filter(
          (pod) =>
            podReady(pod) &&
            selector.every(([label, value]) => pod.metadata.labels?.[label] === value),
        )
        .map((pod) => this.kubelet!.endpoint(pod.metadata.uid, targetPort))
        .filter((endpoint): endpoint is { host: string; port: number } => Boolean(endpoint));
    };
    const ports = (service.spec.ports ?? []).map((p: Obj) => ({
      port: p.port,
      targetPort: p.targetPort ?? p.port,
    }));
    this.schedule(() => {
      this.balancers.ensure(key, ports, backends).then(
        (address) => {
          const current = this.objects.get(key);
          if (!current) return this.balancers.release(key);
          const next = structuredClone(current);
          next.status = { loadBalancer: { ingress: [{ ip: address, ipMode: 'VIP' }] } };
          this.write(resourceOf('Service'), next);
        },
        (error: unknown) => console.error(`load balancer for ${key}: ${String(error)}`),
      );
    }, this.options.loadBalancerDelayMs!);
  }

  // ---- the pod proxy -------------------------------------------------------------------------

  /**
   * `/api/v1/namespaces/{ns}/pods/{[scheme:]name[:port]}/proxy/{path}`: forwards the request to
   * the pod's port (the first container port when none is named) as the API server does: the
   * caller's Authorization header is not passed on, the pod's answer comes back as it is
   * (status, headers, body), and an unreachable pod is the API server's own 503 Status.
   */
  private async proxyToPod(
    req: http.IncomingMessage,
    res: http.ServerResponse,
    url: URL,
    match: RegExpExecArray,
  ): Promise<void> {
    const user = this.admit(req, url);
    const type = resourceOf('Pod');
    const namespace = decodeURIComponent(match[1]);
    const parts = decodeURIComponent(match[2]).split(':');
    const [name, port] =
      parts.length === 3 ? [parts[1], parts[2]] : parts.length === 2 ? parts : [parts[0], ''];
    const verb =
      { GET: 'get', HEAD: 'get', POST: 'create', PUT: 'update', PATCH: 'patch', DELETE: 'delete' }[
        req.method ?? 'GET'
      ] ?? 'get';
    this.authorize(verb, type, namespace, name, user, 'proxy');
    const pod = this.require(type, namespace, name);
    if (
      this.options.proxyMaxInFlight !== undefined &&
      this.proxyInFlight >= this.options.proxyMaxInFlight
    ) {
      this.proxyCounts.throttled++;
      res.setHeader('retry-after', '1');
      throw new HttpError(429, 'TooManyRequests', 'Too many requests, please try again later.', {
        retryAfterSeconds: 1,
      });
    }
    const containerPort =
      port === '' ? pod.spec.containers.flatMap((c: Obj) => c.ports ?? [])[0]?.containerPort : port;
    const podIP = pod.status?.podIP;
    if (!podIP)
      throw new HttpError(
        400,
        'BadRequest',
        `address not allowed: pod "${name}" has no IP address`,
      );
    const numeric =
      containerPort === undefined
        ? 80
        : (pod.spec.containers
            .map((c: Obj) => resolvePort(c, containerPort))
            .find((p: unknown) => p !== undefined) ?? Number(containerPort));
    const endpoint = this.kubelet?.endpoint(pod.metadata.uid, numeric);
    const unreachable = () =>
      new HttpError(
        503,
        'ServiceUnavailable',
        `error trying to reach service: dial tcp ${podIP}:${numeric}: connect: connection refused`,
      );
    if (!endpoint) {
      req.resume();
      throw unreachable();
    }
    const headers = { ...req.headers };
    delete headers.authorization;
    delete headers.host;
    delete headers.connection;
    this.proxyInFlight++;
    try {
      await new Promise<void>((resolve, reject) => {
        const upstream = http.request(
          {
            host: endpoint.host,
            port: endpoint.port,
            method: req.method,
            path: `${match[3] ?? '/'}${url.search}`,
            headers: { ...headers, host: `${podIP}:${numeric}` },
          },
          (answer) => {
            this.proxyCounts.forwarded++;
            const forwarded = { ...answer.headers };
            delete forwarded.connection;
            delete forwarded['keep-alive'];
            res.writeHead(answer.statusCode ?? 502, forwarded);
            answer.pipe(res);
            answer.on('end', resolve);
            answer.on('error', reject);
          },
        );
        upstream.on('error', () => reject(unreachable()));
        req.pipe(upstream);
      });
    } finally {
      this.proxyInFlight--;
    }
  }

  // ---- the simulated kubelet ---------------------------------------------------------------

  /** Changes a stored pod (its status, as the kubelet reports it), noting failing reasons. */
  private updatePod(pod: Obj, change: (next: Obj) => void): void {
    const podType = resourceOf('Pod');
    const current = this.objects.get(keyOf(podType, pod.metadata.namespace, pod.metadata.name));
    if (!current || current.metadata.uid !== pod.metadata.uid) return;
    const next = structuredClone(current);
    change(next);
    const waiting = [
      ...(next.status.initContainerStatuses ?? []),
      ...(next.status.containerStatuses ?? []),
    ].find((c: Obj) => c.state?.waiting)?.state.waiting;
    const reason = waiting?.reason;
    if (
      [
        'ErrImagePull',
        'ImagePullBackOff',
        'CrashLoopBackOff',
        'InvalidImageName',
        'CreateContainerConfigError',
      ].includes(reason) &&
      !this.podFailures.some((f) => f.pod === pod.metadata.name)
    ) {
      this.podFailures.push({
        pod: pod.metadata.name,
        reason,
        message: waiting.message,
        at: Date.now(),
      });
    }
    this.write(podType, next);
  }

  private createPod(
    owner: Obj,
    template: Obj,
    name: string,
    extraLabels: Record<string, string>,
  ): void {
    const labels = { ...template.metadata?.labels, ...extraLabels };
    const pod = this.store(resourceOf('Pod'), {
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: {
        name,
        namespace: owner.metadata.namespace,
        labels,
        annotations: template.metadata?.annotations,
        ownerReferences: [ownerReference(owner)],
      },
      spec: { ...structuredClone(template.spec), nodeName: undefined },
      status: { phase: 'Pending', qosClass: 'BestEffort' },
    });
    if (this.kubelet) return this.kubelet.run(pod);
    const image: string = pod.spec.containers[0].image;
    const behaviour =
      this.options.behaviours?.[image] ??
      (validImage(image) ? { kind: 'ready' as const } : { kind: 'invalid-name' as const });
    this.runPod(pod, behaviour, owner.kind === 'Job');
  }

  private runPod(pod: Obj, behaviour: PodBehaviour, runsToCompletion: boolean): void {
    const update = (change: (next: Obj) => void) => this.updatePod(pod, change);
    const stamp = () => new Date().toISOString().replace(/\.\d+Z$/, 'Z');
    const containers: Obj[] = pod.spec.containers;
    const statuses = (state: Obj, extra: Obj = {}) =>
      containers.map((c) => ({
        name: c.name,
        image: c.image,
        imageID: '',
        ready: false,
        restartCount: 0,
        started: false,
        state,
        ...extra,
      }));
    if (behaviour.kind === 'pending') {
      return this.schedule(
        () =>
          update((next) => {
            next.status.conditions = [
              {
                type: 'PodScheduled',
                status: 'False',
                reason: 'Unschedulable',
                message:
                  '0/3 nodes are available: 3 Insufficient cpu. preemption: 0/3 nodes are available: 3 No preemption victims found for incoming pod.',
                lastTransitionTime: stamp(),
              },
            ];
          }),
        20,
      );
    }
    this.schedule(
      () =>
        update((next) => {
          next.spec.nodeName = 'aks-nodepool1-12345678-vmss000000';
          next.status = {
            phase: 'Pending',
            hostIP: '10.224.0.4',
            podIP: `10.244.0.${2 + (randomBytes(1)[0] % 250)}`,
            startTime: stamp(),
            qosClass: 'BestEffort',
            conditions: [
              { type: 'PodScheduled', status: 'True', lastTransitionTime: stamp() },
              {
                type: 'Ready',
                status: 'False',
                reason: 'ContainersNotReady',
                lastTransitionTime: stamp(),
              },
            ],
            containerStatuses: statuses({ waiting: { reason: 'ContainerCreating' } }),
          };
        }),
      20,
    );
    const image = containers[0].image;
    if (behaviour.kind === 'pull-throttled') {
      // Each pull fails with the registry's 429 and the kubelet backs off, until one succeeds.
      for (let attempt = 0; attempt < behaviour.failures; attempt++) {
        this.schedule(
          () =>
            update((next) => {
              next.status.containerStatuses = statuses({
                waiting: {
                  reason: 'ErrImagePull',
                  message:
                    `failed to pull and unpack image "${image}": failed to copy: httpReadSeeker: ` +
                    `failed open: unexpected status code https://${image.split('/')[0]}/v2/` +
                    `blobs/sha256:${'0'.repeat(64)}: 429 Too Many Requests - Server message: ` +
                    `toomanyrequests: too many requests, retry after a while`,
                },
              });
            }),
          60 + attempt * 300,
        );
        this.schedule(
          () =>
            update((next) => {
              next.status.containerStatuses = statuses({
                waiting: {
                  reason: 'ImagePullBackOff',
                  message: `Back-off pulling image "${image}"`,
                },
              });
            }),
          200 + attempt * 300,
        );
      }
      behaviour = { kind: 'ready', delayMs: behaviour.failures * 300 + 100 };
    }
    // Only containers that started have logs.
    if (behaviour.kind === 'crash') {
      this.podLogs.set(
        pod.metadata.uid,
        behaviour.logs ?? [
          'Traceback (most recent call last):',
          'RuntimeError: model file not found',
        ],
      );
    } else if (behaviour.kind === 'ready') {
      this.podLogs.set(pod.metadata.uid, [
        ` * Serving Flask app 'app'`,
        ' * Running on http://0.0.0.0:5000',
      ]);
    }
    switch (behaviour.kind) {
      case 'ready': {
        const delay = behaviour.delayMs ?? this.options.readyDelayMs ?? 100;
        this.schedule(
          () =>
            update((next) => {
              next.status.phase = runsToCompletion ? 'Succeeded' : 'Running';
              next.status.conditions = [
                { type: 'PodScheduled', status: 'True', lastTransitionTime: stamp() },
                { type: 'Initialized', status: 'True', lastTransitionTime: stamp() },
                {
                  type: 'ContainersReady',
                  status: runsToCompletion ? 'False' : 'True',
                  lastTransitionTime: stamp(),
                },
                {
                  type: 'Ready',
                  status: runsToCompletion ? 'False' : 'True',
                  lastTransitionTime: stamp(),
                },
              ];
              next.status.containerStatuses = runsToCompletion
                ? statuses({
                    terminated: {
                      exitCode: 0,
                      reason: 'Completed',
                      startedAt: stamp(),
                      finishedAt: stamp(),
                    },
                  })
                : statuses({ running: { startedAt: stamp() } }, { ready: true, started: true });
            }),
          Math.max(25, delay),
        );
        return;
      }
      case 'pull-fail':
        this.schedule(
          () =>
            update((next) => {
              next.status.containerStatuses = statuses({
                waiting: {
                  reason: 'ErrImagePull',
                  message: `failed to pull and unpack image "${image}": failed to resolve reference "${image}": ${image}: not found`,
                },
              });
            }),
          60,
        );
        this.schedule(
          () =>
            update((next) => {
              next.status.containerStatuses = statuses({
                waiting: {
                  reason: 'ImagePullBackOff',
                  message: `Back-off pulling image "${image}"`,
                },
              });
            }),
          400,
        );
        return;
      case 'invalid-name':
        this.schedule(
          () =>
            update((next) => {
              next.status.containerStatuses = statuses({
                waiting: {
                  reason: 'InvalidImageName',
                  message: `Failed to apply default image tag "${image}": couldn't parse image name "${image}": invalid reference format`,
                },
              });
            }),
          60,
        );
        return;
      case 'config-error':
        this.schedule(
          () =>
            update((next) => {
              next.status.containerStatuses = statuses({
                waiting: {
                  reason: 'CreateContainerConfigError',
                  message: 'secret "model-credentials" not found',
                },
              });
            }),
          60,
        );
        return;
      case 'crash': {
        this.schedule(
          () =>
            update((next) => {
              next.status.phase = 'Running';
              next.status.containerStatuses = statuses(
                { running: { startedAt: stamp() } },
                { started: true },
              );
            }),
          60,
        );
        let restarts = 0;
        const crash = () =>
          update((next) => {
            restarts += 1;
            next.status.containerStatuses = statuses(
              {
                waiting: {
                  reason: 'CrashLoopBackOff',
                  message: `back-off ${10 * 2 ** (restarts - 1)}s restarting failed container=${containers[0].name} pod=${pod.metadata.name}`,
                },
              },
              {
                restartCount: restarts,
                lastState: {
                  terminated: {
                    exitCode: 1,
                    reason: 'Error',
                    startedAt: stamp(),
                    finishedAt: stamp(),
                  },
                },
              },
            );
            if (restarts < 5) this.schedule(crash, 500 * restarts);
          });
        this.schedule(crash, 200);
        return;
      }
    }
  }
}

// ---- helpers -------------------------------------------------------------------------------

function resourceOf(kind: string): ResourceType {
  return RESOURCES.find((r) => r.kind === kind)!;
}

function keyOf(type: ResourceType, namespace: string | undefined, name: string): string {
  return `${type.group}/${type.plural}|${type.namespaced ? (namespace ?? '') : ''}|${name}`;
}

function resourceEntries(type: ResourceType): Obj[] {
  const main = {
    name: type.plural,
    singularName: type.singular,
    namespaced: type.namespaced,
    kind: type.kind,
    verbs: VERBS,
    ...(type.shortNames ? { shortNames: type.shortNames } : {}),
    ...([
      'Deployment',
      'ReplicaSet',
      'StatefulSet',
      'DaemonSet',
      'Job',
      'CronJob',
      'Pod',
      'Service',
    ].includes(type.kind)
      ? { categories: ['all'] }
      : {}),
    storageVersionHash: createHash('sha256')
      .update(`${groupVersion(type)}/${type.kind}`)
      .digest('base64')
      .slice(0, 11),
  };
  const subs = (type.subresources ?? []).map((sub) => ({
    name: `${type.plural}/${sub}`,
    singularName: '',
    namespaced: type.namespaced,
    kind:
      sub === 'scale'
        ? 'Scale'
        : sub === 'log'
          ? 'Pod'
          : sub === 'proxy'
            ? 'PodProxyOptions'
            : type.kind,
    ...(sub === 'scale' ? { group: 'autoscaling', version: 'v1' } : {}),
    verbs:
      sub === 'log'
        ? ['get']
        : sub === 'proxy'
          ? ['create', 'delete', 'get', 'patch', 'update']
          : ['get', 'patch', 'update'],
  }));
  return [main, ...subs];
}

function verbOf(method: string, name: string | undefined, query: URLSearchParams): string {
  switch (method) {
    case 'GET':
      return name ? 'get' : isWatch(query) ? 'watch' : 'list';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return name ? 'delete' : 'deletecollection';
    default:
      return method.toLowerCase();
  }
}

const isWatch = (query: URLSearchParams) => ['1', 'true'].includes(query.get('watch') ?? '');

function wantsTable(accept: string | undefined): boolean {
  return (accept ?? '')
    .split(',')
    .some((part) => /as=Table/.test(part) && /g=meta\.k8s\.io/.test(part));
}

/** Equality-based label selectors (`a=b,c!=d`, `a`) and the metadata.name field selector. */
function selects(object: Obj, query: URLSearchParams): boolean {
  const labels = object.metadata.labels ?? {};
  for (const term of (query.get('labelSelector') ?? '').split(',').filter(Boolean)) {
    const [key, op, value] = /^([^!=]+)(!=|==|=)?(.*)$/.exec(term.trim())!.slice(1);
    if (!op && !(key in labels)) return false;
    if ((op === '=' || op === '==') && labels[key] !== value) return false;
    if (op === '!=' && labels[key] === value) return false;
  }
  for (const term of (query.get('fieldSelector') ?? '').split(',').filter(Boolean)) {
    const [field, value] = term.split('=');
    const actual =
      field === 'metadata.name'
        ? object.metadata.name
        : field === 'metadata.namespace'
          ? object.metadata.namespace
          : undefined;
    if (actual !== value) return false;
  }
  return true;
}

/**
 * Leaf paths of an applied object: every scalar or list (lists are owned whole). Keys are
 * joined with a separator that cannot occur in them, since annotation keys hold dots.
 */
function leafPaths(object: Obj, prefix: string[] = []): string[] {
  const out: string[] = [];
  for (const [key, value] of Object.entries(object)) {
    if (prefix.length === 0 && (key === 'apiVersion' || key === 'kind' || key === 'status'))
      continue;
    if (
      prefix.length === 1 &&
      prefix[0] === 'metadata' &&
      [
        'name',
        'namespace',
        'managedFields',
        'resourceVersion',
        'uid',
        'creationTimestamp',
        'generation',
      ].includes(key)
    )
      continue;
    const path = [...prefix, key];
    if (
      value &&
      typeof value === 'object' &&
      !Array.isArray(value) &&
      Object.keys(value).length > 0
    )
      out.push(...leafPaths(value, path));
    else out.push(path.join(SEPARATOR));
  }
  return out;
}

const SEPARATOR = '\u0001';

function splitPath(path: string): string[] {
  return path.split(SEPARATOR);
}

/** A path as kubectl shows it in conflict messages: `.spec.replicas`. */
function showPath(path: string): string {
  return `.${splitPath(path).join('.')}`;
}

function valueAt(object: Obj, path: string): unknown {
  return splitPath(path).reduce<any>(
    (node, key) => (node && typeof node === 'object' ? node[key] : undefined),
    object,
  );
}

function setAt(object: Obj, path: string, value: unknown): void {
  const keys = splitPath(path);
  let node = object;
  for (const key of keys.slice(0, -1)) {
    if (!node[key] || typeof node[key] !== 'object' || Array.isArray(node[key])) node[key] = {};
    node = node[key];
  }
  node[keys[keys.length - 1]] = value;
}

function removeAt(object: Obj, path: string): void {
  const keys = splitPath(path);
  const parents: Obj[] = [];
  let node = object;
  for (const key of keys.slice(0, -1)) {
    if (!node[key] || typeof node[key] !== 'object') return;
    parents.push(node);
    node = node[key];
  }
  delete node[keys[keys.length - 1]];
  // Drop maps the removal left empty.
  for (let i = keys.length - 2; i >= 0; i--) {
    const parent = parents[i];
    const child = parent[keys[i]];
    if (
      child &&
      typeof child === 'object' &&
      !Array.isArray(child) &&
      Object.keys(child).length === 0
    )
      delete parent[keys[i]];
    else break;
  }
}

/** managedFields' FieldsV1 for a set of leaf paths: `{"f:spec":{"f:replicas":{}}}`. */
function fieldsV1(paths: Set<string>): Obj {
  const root: Obj = {};
  for (const path of paths) {
    let node = root;
    for (const key of splitPath(path)) node = node[`f:${key}`] ??= {};
  }
  return root;
}

function stripVolatile(object: Obj): Obj {
  const copy = structuredClone(object);
  for (const field of ['resourceVersion', 'generation', 'uid', 'creationTimestamp'])
    delete copy.metadata[field];
  copy.metadata.managedFields = (copy.metadata.managedFields ?? []).map((f: Obj) => ({
    ...f,
    time: undefined,
  }));
  return copy;
}

function withoutMeta(object: Obj): Obj {
  const rest = { ...object };
  delete rest.metadata;
  delete rest.status;
  return rest;
}

function ownerReference(owner: Obj): Obj {
  return {
    apiVersion: owner.apiVersion,
    kind: owner.kind,
    name: owner.metadata.name,
    uid: owner.metadata.uid,
    controller: true,
    blockOwnerDeletion: true,
  };
}

/** The pod-template-hash: a short, stable hash of the template, in the alphabet Kubernetes uses. */
function templateHash(template: Obj): string {
  const digest = createHash('sha256')
    .update(JSON.stringify(sortKeys(template)))
    .digest();
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return [...digest.subarray(0, 10)].map((byte) => alphabet[byte % alphabet.length]).join('');
}

function sortKeys(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(sortKeys);
  if (value && typeof value === 'object') {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((key) => [key, sortKeys((value as Obj)[key])]),
    );
  }
  return value;
}

function suffix(): string {
  const alphabet = 'bcdfghjklmnpqrstvwxz2456789';
  return [...randomBytes(5)].map((byte) => alphabet[byte % alphabet.length]).join('');
}

function podReady(pod: Obj): boolean {
  return (pod.status?.conditions ?? []).some((c: Obj) => c.type === 'Ready' && c.status === 'True');
}

function validImage(image: string): boolean {
  return /^[a-z0-9]+([._-][a-z0-9]+)*(:[0-9]+)?(\/[a-z0-9]+([._-][a-z0-9]+)*)*(:[\w][\w.-]{0,127})?(@sha256:[a-f0-9]{64})?$/.test(
    image,
  );
}

function notFound(type: ResourceType, name: string): HttpError {
  return new HttpError(
    404,
    'NotFound',
    `${type.plural}${type.group ? `.${type.group}` : ''} "${name}" not found`,
    { name, group: type.group, kind: type.plural },
  );
}

/** RFC 6902 with the operations Kubernetes clients send: add, remove, replace, test. */
function applyJsonPatch(object: Obj, operations: Obj[]): Obj {
  const next = structuredClone(object);
  for (const op of operations) {
    const keys = String(op.path)
      .split('/')
      .slice(1)
      .map((k) => k.replace(/~1/g, '/').replace(/~0/g, '~'));
    const last = keys.pop()!;
    let node: any = next;
    for (const key of keys) {
      node = node?.[key];
      if (node === undefined)
        throw new HttpError(
          422,
          'Invalid',
          `the server rejected our request due to an error in our request: path ${op.path} does not exist`,
        );
    }
    if (op.op === 'test') {
      // Compared as JSON: under jest, stored objects (structuredClone) and parsed ones come
      // from different realms, which isDeepStrictEqual tells apart.
      if (JSON.stringify(sortKeys(node[last])) !== JSON.stringify(sortKeys(op.value)))
        throw new HttpError(
          422,
          'Invalid',
          `the server rejected our request due to an error in our request: testing value ${op.path} failed`,
        );
    } else if (op.op === 'remove') {
      if (Array.isArray(node)) node.splice(Number(last), 1);
      else delete node[last];
    } else if (op.op === 'add' && Array.isArray(node)) {
      node.splice(last === '-' ? node.length : Number(last), 0, op.value);
    } else if (op.op === 'add' || op.op === 'replace') {
      if (op.op === 'replace' && !(last in node))
        throw new HttpError(
          422,
          'Invalid',
          `the server rejected our request due to an error in our request: replace operation does not apply: doc is missing key: ${op.path}`,
        );
      node[last] = op.value;
    } else {
      throw new HttpError(422, 'Invalid', `Unexpected kind: ${op.op}`);
    }
  }
  return next;
}

/** RFC 7386 JSON merge patch. */
function mergePatch(target: any, patch: any): any {
  if (!patch || typeof patch !== 'object' || Array.isArray(patch)) return patch;
  const result =
    target && typeof target === 'object' && !Array.isArray(target) ? structuredClone(target) : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

function formatAge(ms: number): string {
  const seconds = Math.max(0, Math.floor(ms / 1000));
  if (seconds < 120) return `${seconds}s`;
  if (seconds < 7200) return `${Math.floor(seconds / 60)}m`;
  return `${Math.floor(seconds / 3600)}h`;
}

function send(res: http.ServerResponse, code: number, body: unknown): void {
  const text = JSON.stringify(body);
  res.writeHead(code, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'audit-id': randomUUID(),
  });
  res.end(text);
}

function status(
  res: http.ServerResponse,
  code: number,
  reason: string,
  message: string,
  details?: Obj,
): void {
  if (res.headersSent) return void res.end();
  send(res, code, {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details ? { details } : {}),
    code,
  });
}

function readBody(req: http.IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk: string) => (body += chunk));
    req.on('end', () => resolve(body));
    req.on('error', reject);
  });
}
