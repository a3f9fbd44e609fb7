import { existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import * as path from 'node:path';
import { errorMessage } from '../common/errors';
import type { Logger } from '../common/logger';

/** Keys of the user's config.json that say how to reach registries and the daemon. */
const CARRIED_KEYS = ['HttpHeaders', 'proxies', 'currentContext', 'aliases', 'plugins'] as const;
/** Directories of the user's docker config the CLI reads besides config.json. */
const CARRIED_DIRECTORIES = ['cli-plugins', 'contexts'] as const;

interface UserConfig {
  auths?: Record<string, Record<string, unknown>>;
  credHelpers?: Record<string, string>;
  credsStore?: string;
  [key: string]: unknown;
}

/** The private docker config of one step, layered over the user's own. */
export interface StepDockerConfig {
  /** The directory; DOCKER_CONFIG of every docker call of this step. */
  directory: string;
  /** The environment of every docker call. */
  env: Record<string, string>;
  /** Registries whose sign-in was carried over from the user's config. */
  carried: string[];
}

/** The user's docker config directory, as the docker CLI finds it. */
export function userDockerConfigDir(env: NodeJS.ProcessEnv): string {
  return env.DOCKER_CONFIG || path.join(env.HOME || homedir(), '.docker');
}

/**
 * Creates this step's docker config under `parent`: the sign-ins the user already has (from
 * docker/login-action or `docker login`: `auths`, `credHelpers`, and registries kept in a
 * `credsStore`) except for `registry`, which this step signs in to itself, plus the plugins,
 * contexts and buildx builders of the user's config. `docker login` then writes this step's
 * credentials into the new config only: the user's own config is read, never written, and the
 * directory is removed at the end of the step (and by the post step if the job is cancelled).
 */
export function createStepDockerConfig(
  parent: string,
  env: NodeJS.ProcessEnv,
  registry: string,
  logger: Logger,
): StepDockerConfig {
  const userDir = userDockerConfigDir(env);
  const config = layeredConfig(readUserConfig(path.join(userDir, 'config.json'), logger), registry);
  const directory = mkdtempSync(path.join(parent, 'build-push-docker-'));
  try {
    writeFileSync(path.join(directory, 'config.json'), JSON.stringify(config, null, 2), {
      mode: 0o600,
    });
    for (const name of CARRIED_DIRECTORIES) {
      const source = path.join(userDir, name);
      if (existsSync(source)) symlinkSync(source, path.join(directory, name));
    }
  } catch (error) {
    rmSync(directory, { recursive: true, force: true });
    throw error;
  }
  const childEnv: Record<string, string> = {};
  for (const [name, value] of Object.entries(env)) if (value !== undefined) childEnv[name] = value;
  childEnv.DOCKER_CONFIG = directory;
  // buildx keeps its builders (docker/setup-buildx-action's included) and the current one
  // under the docker config unless BUILDX_CONFIG says otherwise: keep using the user's.
  const userBuildx = path.join(userDir, 'buildx');
  if (!env.BUILDX_CONFIG && existsSync(userBuildx)) childEnv.BUILDX_CONFIG = userBuildx;
  const carried = [
    ...new Set([...Object.keys(config.auths ?? {}), ...Object.keys(config.credHelpers ?? {})]),
  ].filter((key) => key !== registry);
  return { directory, env: childEnv, carried };
}

/**
 * The config this step starts from. A `credsStore` holds the credentials of every registry
 * without a `credHelpers` entry, so it cannot be carried as it is (this step's registry would
 * go to it too): each registry the user signed in to through it (an empty `auths` entry, which
 * `docker login` leaves there) gets it as its own credential helper instead.
 */
export function layeredConfig(user: UserConfig, registry: string): UserConfig {
  const same = (key: string) => registryHost(key) === registry;
  const auths: Record<string, Record<string, unknown>> = {};
  const credHelpers: Record<string, string> = {};
  for (const [key, entry] of Object.entries(user.auths ?? {})) {
    if (same(key)) continue;
    const empty = !entry || Object.keys(entry).length === 0;
    if (empty && user.credsStore && !user.credHelpers?.[key]) credHelpers[key] = user.credsStore;
    else auths[key] = entry;
  }
  for (const [key, helper] of Object.entries(user.credHelpers ?? {})) {
    if (!same(key) && typeof helper === 'string') credHelpers[key] = helper;
  }
  // An entry for this step's registry, empty until `docker login` fills it: a config without
  // any auth would make the CLI pick the platform's default credential store (pass,
  // secretservice) when one is installed, and the login would land outside this directory.
  auths[registry] = {};
  const config: UserConfig = { auths };
  if (Object.keys(credHelpers).length > 0) config.credHelpers = credHelpers;
  for (const key of CARRIED_KEYS) if (user[key] !== undefined) config[key] = user[key];
  return config;
}

/** `https://myacr.azurecr.io/v1/` and `myacr.azurecr.io` name the same registry in `auths`. */
function registryHost(key: string): string {
  return key
    .replace(/^https?:\/\//, '')
    .replace(/\/.*$/, '')
    .toLowerCase();
}

function readUserConfig(file: string, logger: Logger): UserConfig {
  if (!existsSync(file)) return {};
  try {
    const parsed = JSON.parse(readFileSync(file, 'utf8')) as unknown;
    if (parsed && typeof parsed === 'object' && !Array.isArray(parsed)) return parsed as UserConfig;
    throw new Error('not a JSON object');
  } catch (error) {
    logger.warning(
      `Could not read the docker config ${file} (${errorMessage(error)}); sign-ins to other ` +
        'registries (docker/login-action) are not available to this step.',
    );
    return {};
  }
}
