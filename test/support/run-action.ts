import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';

export interface ActionRun {
  exitCode: number;
  stdout: string;
  stderr: string;
  outputs: Record<string, string>;
  summary: string;
  /** Wall time of the process. */
  milliseconds: number;
}

export const REPO_ROOT = path.resolve(__dirname, '../..');

/** Path of an action's committed bundle. */
export function bundlePath(action: string): string {
  return path.join(REPO_ROOT, 'dist', action, 'index.js');
}

/**
 * Runs a bundled action the way the runner does: inputs as INPUT_* variables, outputs through
 * a GITHUB_OUTPUT file, the summary through GITHUB_STEP_SUMMARY, in `cwd` as the workspace.
 */
export async function runAction(
  action: string,
  inputs: Record<string, string>,
  options: { env?: Record<string, string>; cwd?: string; nodeArgs?: string[] } = {},
): Promise<ActionRun> {
  const files = mkdtempSync(path.join(tmpdir(), 'runner-'));
  const outputFile = path.join(files, 'output');
  const summaryFile = path.join(files, 'summary');
  writeFileSync(outputFile, '');
  writeFileSync(summaryFile, '');
  const env: Record<string, string> = {
    PATH: process.env.PATH ?? '',
    HOME: process.env.HOME ?? files,
    NODE_EXTRA_CA_CERTS: process.env.NODE_EXTRA_CA_CERTS ?? '',
    GITHUB_OUTPUT: outputFile,
    GITHUB_STEP_SUMMARY: summaryFile,
    RUNNER_TEMP: files,
    GITHUB_ACTIONS: 'true',
    ...options.env,
  };
  for (const [name, value] of Object.entries(inputs)) {
    env[`INPUT_${name.replace(/ /g, '_').toUpperCase()}`] = value;
  }
  const started = Date.now();
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), bundlePath(action)], {
    cwd: options.cwd ?? files,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  const exitCode = await new Promise<number>((resolve) =>
    child.on('close', (code) => resolve(code ?? -1)),
  );
  const milliseconds = Date.now() - started;
  const result: ActionRun = {
    exitCode,
    stdout,
    stderr,
    outputs: parseOutputFile(readFileSync(outputFile, 'utf8')),
    summary: readFileSync(summaryFile, 'utf8'),
    milliseconds,
  };
  rmSync(files, { recursive: true, force: true });
  return result;
}

/** Parses the `name<<DELIMITER ... DELIMITER` blocks @actions/core writes to GITHUB_OUTPUT. */
export function parseOutputFile(text: string): Record<string, string> {
  const outputs: Record<string, string> = {};
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const heredoc = /^([^=<]+)<<(.+)$/.exec(lines[i]);
    if (heredoc) {
      const [, name, delimiter] = heredoc;
      const value: string[] = [];
      for (i++; i < lines.length && lines[i] !== delimiter; i++) value.push(lines[i]);
      outputs[name] = value.join('\n');
    } else if (lines[i].includes('=')) {
      const at = lines[i].indexOf('=');
      outputs[lines[i].slice(0, at)] = lines[i].slice(at + 1);
    }
  }
  return outputs;
}

/** Every `::error` line the action printed (how setFailed and core.error report). */
export function errorLines(run: ActionRun): string[] {
  return run.stdout.split('\n').filter((line) => /^::error( [^:]*)?::/.test(line));
}
