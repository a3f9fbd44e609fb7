import { randomUUID } from 'node:crypto';
import * as http from 'node:http';
import * as https from 'node:https';
import { json } from './github-oidc';
import { verifyJwt } from './jwt';
import { closeServer, listenOnLoopback } from '../support/ports';

export interface ArmManagedCluster {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  /** The kubeconfig listClusterUserCredential (admin: listClusterAdminCredential) returns. */
  kubeconfig: (admin: boolean) => string;
}

export interface ArmOptions {
  tls: { key: string; cert: string };
  /** Entra's signing keys: ARM accepts only tokens Entra signed. */
  trustedKeys: () => Array<Record<string, unknown>>;
  clusters: ArmManagedCluster[];
  /** App ids that hold no role on the clusters: their calls get 403 AuthorizationFailed. */
  deniedAppIds?: string[];
}

/** The resource of ARM tokens; ARM accepts it with or without the trailing slash. */
export const ARM_AUDIENCES = ['https://management.azure.com', 'https://management.azure.com/'];

/**
 * A stand-in for Azure Resource Manager's two AKS credential actions:
 * `POST /subscriptions/{id}/resourceGroups/{rg}/providers/Microsoft.ContainerService/
 * managedClusters/{name}/listClusterUserCredential|listClusterAdminCredential?api-version=...`
 * answering `{"kubeconfigs":[{"name":"clusterUser","value":"<base64 kubeconfig>"}]}`. It checks
 * the bearer token's signature, lifetime and audience, and answers ARM's error shapes.
 */
export class ArmServer {
  readonly calls: Array<{ action: string; appId: string }> = [];
  /** Every bearer token presented, so tests can check that none was printed. */
  readonly bearerTokens = new Set<string>();
  private server?: https.Server;
  private port = 0;

  constructor(readonly options: ArmOptions) {}

  get endpoint(): string {
    return `https://127.0.0.1:${this.port}`;
  }

  async start(): Promise<this> {
    this.server = https.createServer(this.options.tls, (req, res) => this.handle(req, res));
    this.port = await listenOnLoopback(this.server);
    return this;
  }

  async stop(): Promise<void> {
    await closeServer(this.server);
  }

  private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
    req.resume();
    const url = new URL(req.url ?? '/', this.endpoint);
    const auth = req.headers.authorization ?? '';
    if (!auth.startsWith('Bearer ')) {
      return armError(
        res,
        401,
        'AuthenticationFailed',
        "Authentication failed. The 'Authorization' header is missing.",
      );
    }
    this.bearerTokens.add(auth.slice(7));
    const verified = verifyJwt(auth.slice(7), this.options.trustedKeys());
    if ('error' in verified) {
      return armError(
        res,
        401,
        'InvalidAuthenticationToken',
        `The access token is invalid: ${verified.error}.`,
      );
    }
    const claims = verified.claims;
    if (typeof claims.exp !== 'number' || claims.exp * 1000 < Date.now()) {
      return armError(
        res,
        401,
        'ExpiredAuthenticationToken',
        'The access token expiry UTC time is earlier than current UTC time.',
      );
    }
    if (!ARM_AUDIENCES.includes(String(claims.aud))) {
      return armError(
        res,
        401,
        'InvalidAuthenticationTokenAudience',
        `The access token has been obtained for wrong audience or resource '${claims.aud}'. It should exactly match with one of the allowed audiences 'https://management.core.windows.net/','https://management.azure.com/'.`,
      );
    }
    const match =
      /^\/subscriptions\/([^/]+)\/resourceGroups\/([^/]+)\/providers\/Microsoft\.ContainerService\/managedClusters\/([^/]+)\/(listClusterUserCredential|listClusterAdminCredential)$/i.exec(
        url.pathname,
      );
    if (!match)
      return armError(
        res,
        404,
        'InvalidResourceType',
        `The resource type could not be found for path '${url.pathname}'.`,
      );
    if (req.method !== 'POST')
      return armError(res, 405, 'MethodNotAllowed', 'The requested method is not allowed.');
    if (!url.searchParams.get('api-version')) {
      return armError(
        res,
        400,
        'MissingApiVersionParameter',
        'The api-version query parameter (?api-version=) is required for all requests.',
      );
    }
    const [, subscription, group, name, action] = match.map(decodeURIComponent);
    const appId = String(claims.appid ?? '');
    this.calls.push({ action, appId });
    const scope = `/subscriptions/${subscription}/resourceGroups/${group}/providers/Microsoft.ContainerService/managedClusters/${name}`;
    if (this.options.deniedAppIds?.includes(appId)) {
      return armError(
        res,
        403,
        'AuthorizationFailed',
        `The client '${appId}' with object id '${claims.oid}' does not have authorization to perform action 'Microsoft.ContainerService/managedClusters/${action}/action' over scope '${scope}' or the scope is invalid. If access was recently granted, please refresh your credentials.`,
      );
    }
    const cluster = this.options.clusters.find(
      (c) =>
        c.subscriptionId === subscription &&
        c.resourceGroup.toLowerCase() === group.toLowerCase() &&
        c.name.toLowerCase() === name.toLowerCase(),
    );
    if (!cluster) {
      return armError(
        res,
        404,
        'ResourceNotFound',
        `The Resource 'Microsoft.ContainerService/managedClusters/${name}' under resource group '${group}' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix`,
      );
    }
    const admin = action.toLowerCase() === 'listclusteradmincredential';
    const format = url.searchParams.get('format');
    if (format !== null && (admin || !['azure', 'exec'].includes(format))) {
      return armError(
        res,
        400,
        'InvalidParameter',
        `The value '${format}' of parameter 'format' is not valid.`,
      );
    }
    json(res, 200, {
      kubeconfigs: [
        {
          name: admin ? 'clusterAdmin' : 'clusterUser',
          value: Buffer.from(cluster.kubeconfig(admin)).toString('base64'),
        },
      ],
    });
  }
}

function armError(res: http.ServerResponse, status: number, code: string, message: string): void {
  res.setHeader('x-ms-failure-cause', 'gateway');
  res.setHeader('x-ms-request-id', randomUUID());
  json(res, status, { error: { code, message } });
}
