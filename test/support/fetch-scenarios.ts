import { existsSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';
import type { FaultProxy, ProxiedRequest } from './fault-proxy';
import { errorLines, type ActionRun } from './run-action';

/**
 * Scenarios that fetch-model must pass against every provider (Azure Blob, S3): each test file
 * supplies its own `fetch` (the bundle run against its store) and asserts the same behaviour.
 */

/** Every entry under `dir`, hidden partial files included, relative and sorted. */
export function entries(dir: string): string[] {
  if (!existsSync(dir)) return [];
  return readdirSync(dir, { recursive: true }).map(String).sort();
}

/**
 * Fetches `model` and `labels` (named ResNet_152.model and synset.txt in the store) twice: the
 * second run downloads nothing; after a file is damaged, the third run repairs it.
 */
export async function expectRerunSkipsAndRepairs(
  fetch: (inputs: Record<string, string>) => Promise<ActionRun>,
  workspace: string,
  labels: Buffer,
): Promise<void> {
  const inputs = { blobs: 'ResNet_152.model, synset.txt' };
  const first = await fetch(inputs);
  expect(first.exitCode).toBe(0);
  const second = await fetch(inputs);
  expect(second.exitCode).toBe(0);
  expect(second.outputs['cache-hit']).toBe('true');
  expect(second.outputs['model-digest']).toBe(first.outputs['model-digest']);
  expect(second.summary).toContain('nothing was downloaded');

  const damaged = path.join(workspace, 'model', 'synset.txt');
  writeFileSync(damaged, 'tampered');
  const third = await fetch(inputs);
  expect(third.exitCode).toBe(0);
  expect(third.outputs['cache-hit']).toBe('false');
  expect(readFileSync(damaged).equals(labels)).toBe(true);
}

/** Every ranged read answered 503 for good: the step fails and leaves nothing in `path`. */
export async function expectCleanFailureWhenUnavailable(
  proxy: FaultProxy,
  isRangedGet: (request: ProxiedRequest) => boolean,
  fetch: () => Promise<ActionRun>,
  workspace: string,
): Promise<void> {
  proxy.decide = (request) =>
    isRangedGet(request) ? { kind: 'status', status: 503 } : { kind: 'pass' };
  const run = await fetch();
  expect(run.exitCode).toBe(1);
  expect(errorLines(run).join('\n')).toMatch(/HTTP 503/);
  expect(entries(path.join(workspace, 'model'))).toEqual([]);
}
