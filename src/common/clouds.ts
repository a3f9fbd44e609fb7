import { ConfigurationError, quote } from './errors';

/** Where a national cloud's services live; every value can still be overridden by an input. */
export interface Cloud {
  name: CloudName;
  /** Entra ID authority host. */
  authorityHost: string;
  /** Suffix of `<account>.blob.<suffix>` storage endpoints. */
  storageSuffix: string;
  /** Suffix of `<registry>.<suffix>` container registries. */
  registrySuffix: string;
  /** Azure Resource Manager endpoint, also the resource of its token scope. */
  resourceManager: string;
}

export const CLOUD_NAMES = ['AzurePublicCloud', 'AzureChinaCloud', 'AzureUSGovernment'] as const;
export type CloudName = (typeof CLOUD_NAMES)[number];

const CLOUDS: Record<CloudName, Cloud> = {
  AzurePublicCloud: {
    name: 'AzurePublicCloud',
    authorityHost: 'https://login.microsoftonline.com',
    storageSuffix: 'core.windows.net',
    registrySuffix: 'azurecr.io',
    resourceManager: 'https://management.azure.com',
  },
  AzureChinaCloud: {
    name: 'AzureChinaCloud',
    authorityHost: 'https://login.chinacloudapi.cn',
    storageSuffix: 'core.chinacloudapi.cn',
    registrySuffix: 'azurecr.cn',
    resourceManager: 'https://management.chinacloudapi.cn',
  },
  AzureUSGovernment: {
    name: 'AzureUSGovernment',
    authorityHost: 'https://login.microsoftonline.us',
    storageSuffix: 'core.usgovcloudapi.net',
    registrySuffix: 'azurecr.us',
    resourceManager: 'https://management.usgovcloudapi.net',
  },
};

export function cloudByName(name: string): Cloud {
  const match = CLOUD_NAMES.find((known) => known.toLowerCase() === name.toLowerCase());
  if (!match) {
    throw new ConfigurationError(
      `Invalid cloud ${quote(name)}. Expected one of: ${CLOUD_NAMES.join(', ')}.`,
    );
  }
  return CLOUDS[match];
}

/** Token scopes; storage uses the same resource in every cloud. */
export const STORAGE_SCOPE = 'https://storage.azure.com/.default';

/** `https://<account>.blob.<suffix>` for an account name, checked against Azure's rules. */
export function accountEndpoint(account: string, storageSuffix: string): URL {
  if (!/^[a-z0-9]{3,24}$/.test(account)) {
    throw new ConfigurationError(
      `Invalid storage-account ${quote(account)}. Expected the account name: 3 to 24 lowercase ` +
        `letters and digits (not a URL; use 'blob-endpoint' for a full URL).`,
    );
  }
  return new URL(`https://${account}.blob.${storageSuffix}`);
}
