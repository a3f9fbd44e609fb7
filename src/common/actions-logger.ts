import * as core from '@actions/core';
import type { Logger } from './logger';

/** The runner's log: groups, warnings as annotations, secrets masked with ::add-mask::. */
export function actionsLogger(): Logger {
  return {
    info: (message) => core.info(message),
    warning: (message) => core.warning(message),
    debug: (message) => core.debug(message),
    group: (name, fn) => core.group(name, fn),
    mask: (secret) => {
      if (secret) core.setSecret(secret);
    },
  };
}
