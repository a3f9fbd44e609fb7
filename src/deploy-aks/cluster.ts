import type { TokenSource } from '../common/credential';
import type { Logger } from '../common/logger';
import { fetchKubeconfig } from './aks';
import { ConfigurationError } from '../common/errors';
import type { ClusterSource, ClusterTrust } from './inputs';
import { connectionFromKubeconfig, type KubeConnection } from './kube/connection';

/**
 * Resolves how to talk to the cluster: a kubeconfig from ARM (AKS) or from the input; when it
 * names kubelogin, bearer tokens for the AKS server app from the same OIDC credential, asked
 * for per request so a token near expiry is replaced.
 */
export async function connectCluster(
  source: ClusterSource,
  trust: ClusterTrust,
  tokens: () => TokenSource,
  armResource: string,
  logger: Logger,
): Promise<KubeConnection> {
  let connection: KubeConnection;
  if (source.kind === 'aks') {
    const text = await fetchKubeconfig(
      source.cluster,
      source.armEndpoint,
      () => tokens().get(`${armResource}/.default`),
      logger,
    );
    connection = connectionFromKubeconfig(text, `AKS cluster '${source.cluster.name}'`, logger);
    connection.description = `AKS ${source.cluster.resourceGroup}/${source.cluster.name} (${connection.server.host})`;
  } else {
    connection = connectionFromKubeconfig(source.text, source.origin, logger, source.baseDir);
  }
  if (connection.insecureSkipTlsVerify) {
    if (!trust.allowInsecureTls) {
      throw new ConfigurationError(
        `The kubeconfig for ${connection.description} sets insecure-skip-tls-verify: the API ` +
          `server's certificate would not be checked, so its credentials could go to anyone on ` +
          `the path. Give the kubeconfig the cluster's CA (certificate-authority-data), or set ` +
          `the 'insecure-skip-tls-verify' input to true to accept the risk.`,
      );
    }
    logger.warning(
      `TLS verification of ${connection.server.origin} is off (insecure-skip-tls-verify).`,
    );
  }
  if (connection.entraServerId) {
    const scope = `${connection.entraServerId}/.default`;
    const source = tokens();
    connection.token = () => source.get(scope);
    logger.info(`Signing in to the API server with Entra tokens for ${connection.entraServerId}`);
  }
  return connection;
}
