import { ConfigurationError } from '../../src/common/errors';
import { envInputSource, Inputs, parseByteSize } from '../../src/common/inputs';
import { MemoryLogger } from '../../src/common/logger';
import { readSettings } from '../../src/fetch-model/inputs';

function inputsOf(values: Record<string, string>): Inputs {
  return new Inputs((name) => values[name] ?? '');
}

describe('envInputSource', () => {
  it('reads INPUT_ variables the way the runner sets them', () => {
    const source = envInputSource({ 'INPUT_BLOCK-SIZE': ' 4MiB ', INPUT_SOME_NAME: 'x' });
    expect(source('block-size')).toBe('4MiB');
    expect(source('some name')).toBe('x');
    expect(source('missing')).toBe('');
  });
});

describe('Inputs', () => {
  it('parses booleans, integers, choices, sizes and lists', () => {
    const inputs = inputsOf({
      flag: 'TRUE',
      count: '12',
      mode: 'Required',
      size: '16MiB',
      list: 'a, b\n# comment\n\nc',
    });
    expect(inputs.boolean('flag', false)).toBe(true);
    expect(inputs.integer('count', 1, 1, 64)).toBe(12);
    expect(inputs.choice('mode', ['auto', 'required', 'off'] as const, 'auto')).toBe('required');
    expect(inputs.byteSize('size', 1, 1, 1 << 30)).toBe(16 * 1024 * 1024);
    expect(inputs.list('list')).toEqual(['a', 'b', 'c']);
    expect([...inputs.requested]).toEqual(['flag', 'count', 'mode', 'size', 'list']);
  });

  it('names the input, quotes the value and gives the expected form', () => {
    const inputs = inputsOf({ count: '0', flag: 'maybe', mode: 'x', size: '8 parsecs' });
    expect(() => inputs.integer('count', 8, 1, 64)).toThrow(
      "Invalid count '0'. Expected a whole number from 1 to 64.",
    );
    expect(() => inputs.boolean('flag', false)).toThrow(
      "Invalid flag 'maybe'. Expected true or false.",
    );
    expect(() => inputs.choice('mode', ['a', 'b'] as const, 'a')).toThrow(
      "Invalid mode 'x'. Expected one of: a, b.",
    );
    expect(() => inputs.byteSize('size', 1, 1, 100)).toThrow(/Invalid size '8 parsecs'/);
  });

  it('parses sizes in binary and decimal units', () => {
    expect(parseByteSize('512KiB')).toBe(524288);
    expect(parseByteSize('4M')).toBe(4 * 1024 * 1024);
    expect(parseByteSize('1GB')).toBe(1e9);
    expect(parseByteSize('100')).toBe(100);
    expect(parseByteSize('lots')).toBeUndefined();
  });
});

describe('fetch-model readSettings', () => {
  const base = { 'storage-account': 'mymodels', container: 'models', blobs: 'a.bin' };
  const read = (values: Record<string, string>, env: NodeJS.ProcessEnv = {}) =>
    readSettings(inputsOf(values), env, new MemoryLogger());
  /** The Azure part of the settings (the default provider). */
  const azure = (values: Record<string, string>, env: NodeJS.ProcessEnv = {}) => {
    const { store } = read(values, env);
    if (store.provider !== 'azure-blob') throw new Error(`provider is ${store.provider}`);
    return store;
  };

  it('builds the endpoint from the account and cloud', () => {
    expect(azure(base).endpoint.toString()).toBe('https://mymodels.blob.core.windows.net/');
    expect(azure({ ...base, cloud: 'AzureChinaCloud' }).endpoint.host).toBe(
      'mymodels.blob.core.chinacloudapi.cn',
    );
    expect(azure({ ...base, cloud: 'AzureUSGovernment' }).identity.authorityHost).toBe(
      'https://login.microsoftonline.us',
    );
  });

  it('applies the documented defaults', () => {
    const settings = read(base, { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't' });
    expect(settings.concurrency).toBe(8);
    expect(settings.blockSize).toBe(8 * 1024 * 1024);
    expect(settings.verifyMd5).toBe('auto');
    expect(settings.destination).toMatch(/\/model$/);
    expect(azure(base, { AZURE_CLIENT_ID: 'c', AZURE_TENANT_ID: 't' }).identity).toMatchObject({
      clientId: 'c',
      tenantId: 't',
      audience: 'api://AzureADTokenExchange',
      customAuthority: false,
    });
  });

  it('treats a prefix as a folder', () => {
    const settings = read({ ...base, blobs: '', prefix: 'models/resnet' });
    expect(settings.source).toEqual({ kind: 'prefix', prefix: 'models/resnet/' });
  });

  it.each([
    [
      { ...base, 'blob-endpoint': 'https://x' },
      /either 'storage-account'.*or 'blob-endpoint'.*not both/,
    ],
    [{ container: 'models', blobs: 'a' }, /'storage-account' or 'blob-endpoint' is required/],
    [{ ...base, container: '' }, /Input 'container' is required/],
    [{ ...base, container: 'My_Models' }, /Invalid container 'My_Models'/],
    [
      { ...base, 'storage-account': 'https://mymodels.blob.core.windows.net' },
      /Invalid storage-account/,
    ],
    [{ ...base, blobs: '', prefix: '' }, /'blobs' or 'prefix' is required/],
    [{ ...base, prefix: 'p/' }, /either 'blobs'.*or 'prefix'/],
    [{ ...base, blobs: 'a.bin, a.bin' }, /listed twice/],
    [{ ...base, blobs: 'a.bin@tag=1' }, /Invalid pin/],
    [{ ...base, concurrency: '100' }, /Invalid concurrency '100'/],
    [{ ...base, 'block-size': '1KiB' }, /Invalid block-size '1KiB'/],
    [
      { ...base, 'verify-md5': 'sometimes' },
      /Invalid verify-md5 'sometimes'. Expected one of: auto, required, off/,
    ],
    [{ ...base, cloud: 'Mars' }, /Invalid cloud 'Mars'/],
    [{ ...base, 'authority-host': 'http://login' }, /Invalid authority-host/],
  ])('refuses bad input %#', (values, message) => {
    expect(() => read(values)).toThrow(ConfigurationError);
    expect(() => read(values)).toThrow(message);
  });

  it('masks a SAS token before anything can fail, and never quotes it', () => {
    const logger = new MemoryLogger();
    const sas = 'sv=2023-11-03&sp=r&sig=c2VjcmV0%2Bc2ln';
    const settings = readSettings(inputsOf({ ...base, 'sas-token': `?${sas}` }), {}, logger);
    expect(settings.store.provider === 'azure-blob' && settings.store.sasToken).toBe(sas);
    expect(logger.secrets).toEqual(
      expect.arrayContaining([sas, 'c2VjcmV0+c2ln', 'c2VjcmV0%2Bc2ln']),
    );

    const bad = new MemoryLogger();
    let message = '';
    try {
      readSettings(inputsOf({ ...base, 'sas-token': 'not-a-sas-secret' }), {}, bad);
    } catch (error) {
      message = (error as Error).message;
    }
    expect(message).toMatch(/Invalid sas-token/);
    expect(message).not.toContain('not-a-sas-secret');
    expect(bad.secrets).toContain('not-a-sas-secret');
  });

  it('refuses a blob-endpoint with a query string, masking it', () => {
    const logger = new MemoryLogger();
    expect(() =>
      readSettings(
        inputsOf({
          container: 'models',
          blobs: 'a',
          'blob-endpoint': 'https://a.blob.core.windows.net?sig=abc',
        }),
        {},
        logger,
      ),
    ).toThrow(/must not carry a query string/);
    expect(logger.secrets).toContain('sig=abc');
  });
});

describe('fetch-model readSettings for provider s3', () => {
  const base = {
    provider: 's3',
    bucket: 'my-models',
    region: 'eu-west-1',
    'role-to-assume': 'arn:aws:iam::123456789012:role/fetch-model',
    blobs: 'resnet/model.bin@version=3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY',
  };
  const s3 = (values: Record<string, string>, env: NodeJS.ProcessEnv = {}) => {
    const { store, source } = readSettings(inputsOf(values), env, new MemoryLogger());
    if (store.provider !== 's3') throw new Error(`provider is ${store.provider}`);
    return { store, source };
  };

  it('reads the bucket, region, role and S3 defaults', () => {
    const { store, source } = s3(base);
    expect(store).toEqual({
      provider: 's3',
      bucket: 'my-models',
      endpoint: undefined,
      identity: {
        roleArn: 'arn:aws:iam::123456789012:role/fetch-model',
        roleSessionName: 'fetch-model',
        audience: 'sts.amazonaws.com',
        region: 'eu-west-1',
        stsEndpoint: undefined,
      },
    });
    expect(source).toEqual({
      kind: 'blobs',
      specs: [
        {
          name: 'resnet/model.bin',
          pin: { kind: 'version', value: '3HL4kqtJlcpXroDTDmJ+rmSpXd3dIbrHY' },
        },
      ],
    });
  });

  it('takes the region from AWS_REGION and STS from AWS_ENDPOINT_URL_STS', () => {
    const { store } = s3(
      { ...base, region: '', endpoint: 'https://127.0.0.1:9000/' },
      { AWS_REGION: 'us-east-2', AWS_ENDPOINT_URL_STS: 'https://127.0.0.1:9001' },
    );
    expect(store.identity.region).toBe('us-east-2');
    expect(store.endpoint?.toString()).toBe('https://127.0.0.1:9000/');
    expect(store.identity.stsEndpoint?.toString()).toBe('https://127.0.0.1:9001/');
  });

  it.each([
    [{ ...base, bucket: '' }, /Input 'bucket' is required/],
    [{ ...base, bucket: 's3://my-models' }, /Invalid bucket 's3:\/\/my-models'/],
    [{ ...base, region: '' }, /Input 'region' is required for provider 's3'/],
    [{ ...base, region: 'Ireland' }, /Invalid region 'Ireland'/],
    [{ ...base, 'role-to-assume': 'fetch-model' }, /Invalid role-to-assume 'fetch-model'/],
    [{ ...base, 'role-session-name': 'a b' }, /Invalid role-session-name 'a b'/],
    [{ ...base, endpoint: 'http://minio:9000' }, /Invalid endpoint.*https:\/\//],
    [{ ...base, container: 'models' }, /'container' does not apply to provider 's3'/],
    [{ ...base, blobs: 'm.bin@snapshot=2024-05-01T10:20:30Z' }, /S3 has no snapshots/],
    [{ ...base, provider: 'gcs' }, /Invalid provider 'gcs'. Expected one of: azure-blob, s3/],
  ])('refuses bad input %#', (values, message) => {
    expect(() => s3(values)).toThrow(ConfigurationError);
    expect(() => s3(values)).toThrow(message);
  });

  it('refuses S3 inputs with the Azure provider', () => {
    expect(() =>
      readSettings(
        inputsOf({ 'storage-account': 'acct', container: 'models', blobs: 'a', bucket: 'b' }),
        {},
        new MemoryLogger(),
      ),
    ).toThrow(/'bucket' does not apply to provider 'azure-blob'.*provider: s3/);
  });
});
