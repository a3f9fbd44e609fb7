import { ConfigurationError, errorMessage } from '../common/errors';
import { readBody, send } from '../common/http';
import type { Logger } from '../common/logger';
import { HttpError } from '../common/http-error';
import { withRetry } from '../common/retry';

export interface AksCluster {
  subscriptionId: string;
  resourceGroup: string;
  name: string;
  /** listClusterAdminCredential instead of listClusterUserCredential. */
  admin: boolean;
}

export const ARM_API_VERSION = '2024-05-01';

/**
 * Asks ARM for the cluster's kubeconfig (`POST .../listClusterUserCredential` or
 * `listClusterAdminCredential`) with an ARM token, and returns it as text, masked. For an
 * Entra-enabled cluster the user kubeconfig names kubelogin; the caller answers that itself.
 */
export async function fetchKubeconfig(
  cluster: AksCluster,
  armEndpoint: string,
  armToken: () => Promise<string>,
  logger: Logger,
): Promise<string> {
  const action = cluster.admin ? 'listClusterAdminCredential' : 'listClusterUserCredential';
  const url = new URL(
    `${armEndpoint.replace(/\/+$/, '')}/subscriptions/${encodeURIComponent(cluster.subscriptionId)}` +
      `/resourceGroups/${encodeURIComponent(cluster.resourceGroup)}` +
      `/providers/Microsoft.ContainerService/managedClusters/${encodeURIComponent(cluster.name)}/${action}`,
  );
  url.searchParams.set('api-version', ARM_API_VERSION);
  // The exec format (kubelogin) is the one this action answers itself; the legacy
  // auth-provider format is read too, for clusters that still return it.
  if (!cluster.admin) url.searchParams.set('format', 'exec');
  const body = await withRetry(
    async () => {
      const response = await send({
        method: 'POST',
        url,
        headers: { authorization: `Bearer ${await armToken()}`, 'content-length': '0' },
        idleTimeoutMs: 60_000,
      });
      const text = (await readBody(response.body)).toString('utf8');
      if (response.status === 200) return text;
      throw armError(response.status, text, cluster, action);
    },
    { description: `ARM ${action}`, logger },
  );
  let kubeconfigs: Array<{ name: string; value: string }>;
  try {
    kubeconfigs = (JSON.parse(body) as { kubeconfigs: typeof kubeconfigs }).kubeconfigs;
  } catch (error) {
    throw new Error(`ARM ${action} answered something that is not JSON: ${errorMessage(error)}`);
  }
  if (!Array.isArray(kubeconfigs) || kubeconfigs.length === 0) {
    throw new Error(`ARM ${action} returned no kubeconfig for cluster '${cluster.name}'.`);
  }
  const kubeconfig = Buffer.from(kubeconfigs[0].value, 'base64').toString('utf8');
  logger.mask(kubeconfigs[0].value);
  return kubeconfig;
}

function armError(status: number, text: string, cluster: AksCluster, action: string): Error {
  let code: string | undefined;
  let message = text.slice(0, 300);
  try {
    const parsed = JSON.parse(text) as { error?: { code?: string; message?: string } };
    code = parsed.error?.code;
    message = parsed.error?.message ?? message;
  } catch {
    // Not JSON: keep the text.
  }
  const where = `cluster '${cluster.name}' in resource group '${cluster.resourceGroup}' (subscription ${cluster.subscriptionId})`;
  if (status === 403) {
    const role = cluster.admin
      ? 'Azure Kubernetes Service Cluster Admin Role'
      : 'Azure Kubernetes Service Cluster User Role';
    return new ConfigurationError(
      `Azure denied ${action} on ${where}: ${code ?? 'Forbidden'}: ${message} The app registration ` +
        `needs the '${role}' on the cluster (Microsoft.ContainerService/managedClusters/` +
        `${action}/action).`,
    );
  }
  if (status === 404) {
    return new ConfigurationError(
      `Azure found no ${where}: ${code ?? 'NotFound'}: ${message} Check resource-group, ` +
        `cluster-name and subscription-id.`,
    );
  }
  if (status === 401) {
    return new ConfigurationError(
      `Azure Resource Manager rejected the token (401 ${code ?? ''}): ${message}`,
    );
  }
  return new HttpError(
    `ARM ${action} on ${where} failed: HTTP ${status} ${code ?? ''}: ${message}`,
    status,
    code,
  );
}
