import type { Logger } from '../../common/logger';
import type { KubeClient, ResourceInfo } from './client';
import { Informer } from './informer';

export interface ServiceEndpoint {
  service: string;
  namespace: string;
  /** External IP or host name. */
  address: string;
  ports: number[];
}

/**
 * Waits (by watching) until every LoadBalancer service has an external IP or host name, or
 * the deadline passes; returns the endpoints known by then.
 */
export async function waitForEndpoints(
  client: KubeClient,
  services: Array<{ info: ResourceInfo; name: string; namespace: string }>,
  deadline: number,
  logger: Logger,
): Promise<ServiceEndpoint[]> {
  if (services.length === 0) return [];
  const abort = new AbortController();
  const namespaces = [...new Set(services.map((service) => service.namespace))];
  const informers = new Map<string, Informer>();
  const collect = (): ServiceEndpoint[] =>
    services.flatMap(({ name, namespace }) => {
      const service = informers.get(namespace)?.objects.get(name) as
        | {
            spec?: { ports?: Array<{ port: number }> };
            status?: { loadBalancer?: { ingress?: Array<{ ip?: string; hostname?: string }> } };
          }
        | undefined;
      const ingress = service?.status?.loadBalancer?.ingress ?? [];
      return ingress
        .map((entry) => entry.ip ?? entry.hostname)
        .filter((address): address is string => Boolean(address))
        .map((address) => ({
          service: name,
          namespace,
          address,
          ports: (service?.spec?.ports ?? []).map((p) => p.port),
        }));
    });
  const result = await new Promise<ServiceEndpoint[]>((resolve, reject) => {
    const check = () => {
      const found = collect();
      if (new Set(found.map((e) => `${e.namespace}/${e.service}`)).size === services.length)
        resolve(found);
    };
    const timer = setTimeout(
      () => {
        logger.info('Not every LoadBalancer service got an external address before the timeout.');
        resolve(collect());
      },
      Math.max(0, deadline - Date.now()),
    );
    abort.signal.addEventListener('abort', () => clearTimeout(timer));
    for (const namespace of namespaces) {
      informers.set(
        namespace,
        new Informer(client, services[0].info, namespace, check, abort.signal, logger, reject),
      );
    }
  }).finally(() => abort.abort());
  await Promise.all([...informers.values()].map((informer) => informer.finished()));
  return result;
}
