import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parse } from 'yaml';
import { ConfigurationError, errorMessage } from '../../common/errors';
import type { Logger } from '../../common/logger';

/** The AKS AAD server application: the audience of Entra tokens that AKS API servers accept. */
export const AKS_SERVER_APP_ID = '6dae42f8-4368-4678-94ff-3960e28e3630';

/** How to reach and authenticate to one API server. */
export interface KubeConnection {
  server: URL;
  /** PEM of the cluster CA; the system's trust store when absent. */
  ca?: string;
  insecureSkipTlsVerify: boolean;
  clientCertificate?: { cert: string; key: string };
  /** A bearer token per request; undefined for client-certificate auth. */
  token?: () => Promise<string>;
  /** Entra server app id when the kubeconfig asks for kubelogin; the caller supplies the token. */
  entraServerId?: string;
  /** Names the cluster in logs and the summary. */
  description: string;
}

interface KubeconfigFile {
  'current-context'?: string;
  contexts?: Array<{
    name: string;
    context: { cluster: string; user: string; namespace?: string };
  }>;
  clusters?: Array<{
    name: string;
    cluster: {
      server: string;
      'certificate-authority-data'?: string;
      'certificate-authority'?: string;
      'insecure-skip-tls-verify'?: boolean;
    };
  }>;
  users?: Array<{ name: string; user: KubeconfigUser }>;
}

interface KubeconfigUser {
  token?: string;
  tokenFile?: string;
  'client-certificate-data'?: string;
  'client-key-data'?: string;
  'client-certificate'?: string;
  'client-key'?: string;
  exec?: { command: string; args?: string[]; apiVersion?: string };
  'auth-provider'?: { name: string };
}

/**
 * Reads a kubeconfig (its current context, or the only one) into a connection, masking every
 * credential in it before anything could print it. The kubelogin exec plugin AKS writes for
 * Entra-enabled clusters is recognised and answered with our own Entra token for its server
 * id; other exec plugins would need tools this action does not run.
 */
export function connectionFromKubeconfig(
  text: string,
  origin: string,
  logger: Logger,
  baseDir = process.cwd(),
): KubeConnection {
  let config: KubeconfigFile;
  try {
    config = parse(text) as KubeconfigFile;
  } catch (error) {
    throw new ConfigurationError(
      `The kubeconfig from ${origin} is not valid YAML: ${errorMessage(error)}`,
    );
  }
  if (!config || typeof config !== 'object' || !Array.isArray(config.clusters)) {
    throw new ConfigurationError(
      `The kubeconfig from ${origin} has no clusters. Expected a kubeconfig file (apiVersion: v1, ` +
        `kind: Config) or its path.`,
    );
  }
  for (const { user } of config.users ?? []) {
    for (const secret of [
      user?.token,
      user?.['client-key-data'],
      user?.['client-certificate-data'],
    ])
      if (secret) logger.mask(secret);
  }
  const contexts = config.contexts ?? [];
  const contextName =
    config['current-context'] || (contexts.length === 1 ? contexts[0].name : undefined);
  const context = contexts.find((c) => c.name === contextName)?.context;
  if (!context) {
    throw new ConfigurationError(
      `The kubeconfig from ${origin} has no current-context ${contextName ? `'${contextName}' ` : ''}` +
        `among its contexts (${contexts.map((c) => c.name).join(', ') || 'none'}).`,
    );
  }
  const cluster = config.clusters.find((c) => c.name === context.cluster)?.cluster;
  const user = config.users?.find((u) => u.name === context.user)?.user ?? {};
  if (!cluster?.server) {
    throw new ConfigurationError(
      `The kubeconfig from ${origin} has no server for cluster '${context.cluster}'.`,
    );
  }
  let server: URL;
  try {
    server = new URL(cluster.server);
  } catch {
    throw new ConfigurationError(
      `The kubeconfig from ${origin} has an invalid server '${cluster.server}'.`,
    );
  }
  const file = (name: string) => readFileSync(path.resolve(baseDir, name), 'utf8');
  const ca = cluster['certificate-authority-data']
    ? Buffer.from(cluster['certificate-authority-data'], 'base64').toString('utf8')
    : cluster['certificate-authority']
      ? file(cluster['certificate-authority'])
      : undefined;

  const connection: KubeConnection = {
    server,
    ca,
    insecureSkipTlsVerify: cluster['insecure-skip-tls-verify'] === true,
    description: `${context.cluster} (${server.host})`,
  };
  const certData =
    user['client-certificate-data'] ??
    (user['client-certificate'] &&
      Buffer.from(file(user['client-certificate'])).toString('base64'));
  const keyData =
    user['client-key-data'] ??
    (user['client-key'] && Buffer.from(file(user['client-key'])).toString('base64'));
  if (certData && keyData) {
    const key = Buffer.from(keyData, 'base64').toString('utf8');
    logger.mask(key);
    connection.clientCertificate = { cert: Buffer.from(certData, 'base64').toString('utf8'), key };
  }
  if (user.token) {
    const token = user.token;
    connection.token = async () => token;
  } else if (user.tokenFile) {
    const tokenFile = path.resolve(baseDir, user.tokenFile);
    connection.token = async () => {
      const token = readFileSync(tokenFile, 'utf8').trim();
      logger.mask(token);
      return token;
    };
  } else if (user.exec) {
    const args = user.exec.args ?? [];
    const isKubelogin =
      path.basename(user.exec.command) === 'kubelogin' && args.includes('get-token');
    if (!isKubelogin) {
      throw new ConfigurationError(
        `The kubeconfig from ${origin} authenticates with the exec plugin '${user.exec.command}', ` +
          `which this action does not run. Use a kubeconfig with a token or client certificate, ` +
          `or an AKS cluster through resource-group and cluster-name.`,
      );
    }
    const serverIdAt = args.indexOf('--server-id');
    connection.entraServerId = serverIdAt >= 0 ? args[serverIdAt + 1] : AKS_SERVER_APP_ID;
  } else if (user['auth-provider']) {
    throw new ConfigurationError(
      `The kubeconfig from ${origin} uses the '${user['auth-provider'].name}' auth-provider, ` +
        `which Kubernetes removed; use an AKS cluster through resource-group and cluster-name.`,
    );
  }
  return connection;
}
