import * as path from 'node:path';
import { ConfigurationError, quote } from '../common/errors';

/**
 * Maps a blob name (or its part under a prefix) to a relative file path inside the
 * destination, refusing anything that could land outside it: `..` or `.` segments, absolute
 * names, empty segments, NUL bytes.
 */
export function safeRelativePath(name: string, what: string): string {
  if (name.includes('\0')) {
    throw new ConfigurationError(`${what} ${quote(name)} contains a NUL byte.`);
  }
  if (name.startsWith('/') || /^[a-zA-Z]:[\\/]/.test(name)) {
    throw new ConfigurationError(
      `${what} ${quote(name)} is an absolute path and would be written outside 'path'. ` +
        `Expected a relative name such as models/resnet.onnx.`,
    );
  }
  const segments = name.split('/');
  for (const segment of segments) {
    if (segment === '..' || segment === '.') {
      throw new ConfigurationError(
        `${what} ${quote(name)} contains a '${segment}' segment and would be written outside ` +
          `'path'. Expected a name without '.' or '..' segments.`,
      );
    }
    if (segment === '') {
      throw new ConfigurationError(
        `${what} ${quote(name)} has an empty path segment. Expected names like dir/file.bin.`,
      );
    }
  }
  return segments.join('/');
}

/** The absolute path of `relative` under `root`, checked once more after resolution. */
export function resolveInside(root: string, relative: string): string {
  const resolvedRoot = path.resolve(root);
  const target = path.resolve(resolvedRoot, relative);
  if (!target.startsWith(resolvedRoot + path.sep)) {
    throw new ConfigurationError(
      `${quote(relative)} would be written outside 'path' (${resolvedRoot}).`,
    );
  }
  return target;
}
