import { chmodSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import * as path from 'node:path';

/**
 * A stand-in for the docker buildx CLI plugin, which cannot be installed here (no internet, and
 * Debian's docker.io has no buildx). It is installed where docker/setup-buildx-action puts the
 * real one, `<docker config>/cli-plugins/docker-buildx`, and speaks the CLI plugin protocol: the
 * docker CLI asks it for `docker-cli-plugin-metadata`, then runs it with `buildx <args>`.
 * `buildx version` answers as buildx does; any other command is recorded (its arguments and the
 * buildx-related environment) and fails, since this stand-in builds nothing.
 */
export function installBuildxPlugin(dockerConfigDir: string, recordFile: string): void {
  const dir = path.join(dockerConfigDir, 'cli-plugins');
  mkdirSync(dir, { recursive: true });
  const plugin = path.join(dir, 'docker-buildx');
  writeFileSync(
    plugin,
    `#!/bin/sh
if [ "$1" = docker-cli-plugin-metadata ]; then
  echo '{"SchemaVersion":"0.1.0","Vendor":"Docker Inc.","Version":"v0.0.0-stand-in","ShortDescription":"Docker Buildx"}'
  exit 0
fi
if [ "$1" = buildx ] && [ "$2" = version ]; then
  echo "github.com/docker/buildx v0.0.0-stand-in 0000000"
  exit 0
fi
{
  printf 'BUILDX_BUILDER=%s\\n' "$BUILDX_BUILDER"
  printf 'BUILDX_CONFIG=%s\\n' "$BUILDX_CONFIG"
  printf 'DOCKER_CONFIG=%s\\n' "$DOCKER_CONFIG"
  for arg in "$@"; do printf 'arg=%s\\n' "$arg"; done
} > ${JSON.stringify(recordFile)}
echo "ERROR: this buildx stand-in builds nothing" >&2
exit 1
`,
  );
  chmodSync(plugin, 0o755);
}

/** What the stand-in recorded of its last call. */
export function recordedBuildxCall(
  recordFile: string,
): { args: string[]; env: Record<string, string> } | undefined {
  if (!existsSync(recordFile)) return undefined;
  const args: string[] = [];
  const env: Record<string, string> = {};
  for (const line of readFileSync(recordFile, 'utf8').split('\n')) {
    const at = line.indexOf('=');
    if (at < 0) continue;
    const [key, value] = [line.slice(0, at), line.slice(at + 1)];
    if (key === 'arg') args.push(value);
    else env[key] = value;
  }
  return { args, env };
}
