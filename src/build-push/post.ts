import { spawnSync } from 'node:child_process';
import { existsSync, rmSync } from 'node:fs';
import * as core from '@actions/core';
import { STATE_DOCKER_CONFIG, STATE_REGISTRY } from './main';

/**
 * The post step: when the main step was cancelled between `docker login` and its own logout,
 * this logs out and removes the private docker config. Normally there is nothing left to do.
 */
export function post(): void {
  const dockerConfig = core.getState(STATE_DOCKER_CONFIG);
  const registry = core.getState(STATE_REGISTRY);
  if (!dockerConfig || !existsSync(dockerConfig)) return;
  if (registry)
    spawnSync('docker', ['--config', dockerConfig, 'logout', registry], { stdio: 'ignore' });
  rmSync(dockerConfig, { recursive: true, force: true });
  core.info(`removed the docker login for ${registry || 'the registry'}`);
}
