import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { load } from 'js-yaml';
import { Inputs } from '../../src/common/inputs';
import { MemoryLogger } from '../../src/common/logger';
import { readSettings as readFetchSettings } from '../../src/fetch-model/inputs';

const ROOT = path.resolve(__dirname, '../..');

interface ActionYaml {
  inputs: Record<string, { required?: boolean; default?: string }>;
  outputs: Record<string, unknown>;
  runs: { using: string; main: string };
}

function actionYaml(action: string): ActionYaml {
  return load(
    readFileSync(path.join(ROOT, `action-${action}`, 'action.yml'), 'utf8'),
  ) as ActionYaml;
}

/** Runs an action's settings reader with `values`, recording every input name it asks for. */
function requestedInputs(
  reader: (inputs: Inputs) => unknown,
  values: Record<string, string>,
): Set<string> {
  const inputs = new Inputs((name) => values[name] ?? '');
  reader(inputs);
  return inputs.requested;
}

describe('action-fetch-model/action.yml', () => {
  const yaml = actionYaml('fetch-model');
  const read = (inputs: Inputs) => readFetchSettings(inputs, {}, new MemoryLogger());

  it('runs the committed bundle on node24', () => {
    expect(yaml.runs).toEqual({ using: 'node24', main: '../dist/fetch-model/index.js' });
  });

  it('declares every input the action reads, and the action reads every declared input', () => {
    const requested = new Set([
      ...requestedInputs(read, { 'storage-account': 'acct', container: 'models', blobs: 'a' }),
      ...requestedInputs(read, { 'blob-endpoint': 'https://x', container: 'models', prefix: 'p/' }),
      ...requestedInputs(read, {
        provider: 's3',
        bucket: 'models',
        region: 'eu-west-1',
        'role-to-assume': 'arn:aws:iam::123456789012:role/fetch-model',
        blobs: 'a',
      }),
    ]);
    expect([...requested].sort()).toEqual(Object.keys(yaml.inputs).sort());
  });

  it('documents the same defaults the code applies', () => {
    const settings = read(
      new Inputs((name) =>
        name === 'storage-account'
          ? 'acct'
          : name === 'container'
            ? 'models'
            : name === 'blobs'
              ? 'a'
              : '',
      ),
    );
    expect(yaml.inputs.path.default).toBe('model');
    expect(settings.destination.endsWith(`/${yaml.inputs.path.default}`)).toBe(true);
    expect(Number(yaml.inputs.concurrency.default)).toBe(settings.concurrency);
    expect(yaml.inputs['verify-md5'].default).toBe(settings.verifyMd5);
    expect(yaml.inputs['block-size'].default).toBe('8MiB');
    expect(settings.blockSize).toBe(8 * 1024 * 1024);
    expect(yaml.inputs.provider.default).toBe(settings.store.provider);
    if (settings.store.provider !== 'azure-blob') throw new Error('azure-blob is the default');
    expect(yaml.inputs.cloud.default).toBe(settings.store.identity.cloud.name);
  });

  it('documents the audience default of each provider, which the code applies', () => {
    const s3 = read(
      new Inputs(
        (name) =>
          ({
            provider: 's3',
            bucket: 'models',
            region: 'eu-west-1',
            'role-to-assume': 'arn:aws:iam::123456789012:role/fetch-model',
            blobs: 'a',
          })[name] ?? '',
      ),
    );
    const azure = read(
      new Inputs(
        (name) => ({ 'storage-account': 'acct', container: 'models', blobs: 'a' })[name] ?? '',
      ),
    );
    // One input, two defaults: action.yml cannot declare either, so its description names both.
    expect(yaml.inputs.audience.default).toBeUndefined();
    const description = (yaml.inputs.audience as { description: string }).description;
    expect(azure.store.identity.audience).toBe('api://AzureADTokenExchange');
    expect(s3.store.identity.audience).toBe('sts.amazonaws.com');
    expect(description).toContain('`api://AzureADTokenExchange`');
    expect(description).toContain('`sts.amazonaws.com`');
  });

  it('declares the outputs main.ts sets', () => {
    const main = readFileSync(path.join(ROOT, 'src/fetch-model/main.ts'), 'utf8');
    const set = [...main.matchAll(/core\.setOutput\('([^']+)'/g)].map((match) => match[1]);
    expect(set.sort()).toEqual(Object.keys(yaml.outputs).sort());
  });
});
