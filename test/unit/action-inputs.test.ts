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
    expect(yaml.inputs.audience.default).toBe(settings.identity.audience);
    expect(yaml.inputs.cloud.default).toBe(settings.identity.cloud.name);
  });

  it('declares the outputs main.ts sets', () => {
    const main = readFileSync(path.join(ROOT, 'src/fetch-model/main.ts'), 'utf8');
    const set = [...main.matchAll(/core\.setOutput\('([^']+)'/g)].map((match) => match[1]);
    expect(set.sort()).toEqual(Object.keys(yaml.outputs).sort());
  });
});
