import { execFile } from 'node:child_process';
import { existsSync, realpathSync } from 'node:fs';
import * as path from 'node:path';
import { promisify } from 'node:util';
import { REPO_ROOT } from './run-action';

const run = promisify(execFile);

/**
 * Every real kubectl on this machine: Debian's kubernetes-client (1.20), installed by
 * scripts/setup.d/40-kubectl.sh (unpacked under .local where another package owns
 * /usr/bin/kubectl), and whatever other kubectl is on PATH.
 */
export function kubectlBinaries(): string[] {
  const candidates = [
    path.join(REPO_ROOT, '.local/kubernetes-client/usr/bin/kubectl'),
    ...(process.env.PATH ?? '').split(':').map((dir) => path.join(dir, 'kubectl')),
  ];
  return [
    ...new Set(candidates.filter((file) => existsSync(file)).map((file) => realpathSync(file))),
  ];
}

/** Runs kubectl with a kubeconfig file and an otherwise empty environment (HOME = `home`). */
export async function kubectl(
  binary: string,
  kubeconfig: string,
  home: string,
  args: string[],
): Promise<{ stdout: string; stderr: string }> {
  return run(binary, ['--kubeconfig', kubeconfig, ...args], {
    env: { PATH: process.env.PATH ?? '', HOME: home },
    timeout: 60_000,
  });
}
