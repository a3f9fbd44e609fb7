import * as path from 'node:path';

/**
 * Worker options under which a real worker thread fails as it starts, asynchronously (its
 * preload script throws): the 'error' event a worker gives when it cannot be set up. (Starving
 * its heap instead aborts the whole process on Node 24.)
 */
export const WORKERS_FAIL_TO_START = {
  execArgv: ['--require', path.join(__dirname, '..', 'fixtures', 'worker-preload-fails.cjs')],
};
