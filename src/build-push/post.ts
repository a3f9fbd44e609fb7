import { existsSync, rmSync } from 'node:fs';
import * as core from '@actions/core';
import { STATE_DOCKER_CONFIG, STATE_REGISTRY } from './main';

/**
 * The post step: when the main step was cancelled before it could remove this step's private
 * docker config (which holds its sign-in to the registry), this removes it. The credentials live
 * only in that file, so removing it is the whole sign-out; the user's own config was never
 * written. Normally there is nothing left to do.
 */
export function post(): void {
  const dockerConfig = core.getState(STATE_DOCKER_CONFIG);
  const registry = core.getState(STATE_REGISTRY);
  if (!dockerConfig || !existsSync(dockerConfig)) return;
  rmSync(dockerConfig, { recursive: true, force: true });
  core.info(`removed the docker login for ${registry || 'the registry'}`);
}
