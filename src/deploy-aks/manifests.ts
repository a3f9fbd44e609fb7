import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { isMap, isSeq, LineCounter, parseAllDocuments } from 'yaml';
import { ConfigurationError, quote } from '../common/errors';

/** A Kubernetes object as read from a manifest. */
export type KubeObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name?: string; namespace?: string };
};

/** Where an object came from, for error messages: file and 1-based document number. */
export interface Source {
  file: string;
  document: number;
}

export interface ManifestObject {
  object: KubeObject;
  source: Source;
}

export function describeSource(source: Source): string {
  return `${source.file} (document ${source.document})`;
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/**
 * Expands the `manifests` input: files, directories (their .yaml/.yml/.json files, recursively,
 * sorted) and globs (`*`, `**`, `?`, `{a,b}`), relative to `cwd`. Every entry must match
 * something, and no file is read twice.
 */
export function expandManifestPaths(entries: string[], cwd: string): string[] {
  const files: string[] = [];
  const seen = new Set<string>();
  const add = (file: string) => {
    if (!seen.has(file)) {
      seen.add(file);
      files.push(file);
    }
  };
  for (const entry of entries) {
    const absolute = path.resolve(cwd, entry);
    if (!/[*?{]/.test(entry)) {
      if (!existsSync(absolute)) {
        throw new ConfigurationError(
          `Invalid manifests entry ${quote(entry)}: no such file or directory (looked in ${cwd}). ` +
            `Expected a file, a directory or a glob such as k8s/*.yaml.`,
        );
      }
      if (statSync(absolute).isDirectory()) {
        const found = walk(absolute).filter((file) => MANIFEST_FILE.test(file));
        if (found.length === 0) {
          throw new ConfigurationError(
            `Invalid manifests entry ${quote(entry)}: the directory holds no .yaml, .yml or .json file.`,
          );
        }
        found.forEach(add);
      } else {
        add(absolute);
      }
      continue;
    }
    const matches = glob(absolute);
    if (matches.length === 0) {
      throw new ConfigurationError(
        `Invalid manifests entry ${quote(entry)}: the pattern matches no file (looked in ${cwd}).`,
      );
    }
    matches.forEach(add);
  }
  return files;
}

function walk(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(dir, { withFileTypes: true }).sort((a, b) =>
    a.name.localeCompare(b.name),
  )) {
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...walk(full));
    else if (entry.isFile()) out.push(full);
  }
  return out;
}

/** Files matching an absolute glob pattern, sorted. */
export function glob(pattern: string): string[] {
  const parts = pattern.split('/');
  const firstMagic = parts.findIndex((part) => /[*?{]/.test(part));
  const base = parts.slice(0, firstMagic).join('/') || '/';
  if (!existsSync(base)) return [];
  const matcher = globToRegExp(pattern);
  return walk(base).filter((file) => matcher.test(file));
}

export function globToRegExp(pattern: string): RegExp {
  let source = '';
  for (let i = 0; i < pattern.length; i++) {
    const char = pattern[i];
    if (char === '*' && pattern[i + 1] === '*') {
      // `**/` matches any number of directories, none included.
      if (pattern[i + 2] === '/') {
        source += '(?:[^/]*/)*';
        i += 2;
      } else {
        source += '.*';
        i += 1;
      }
    } else if (char === '*') source += '[^/]*';
    else if (char === '?') source += '[^/]';
    else if (char === '{') {
      const close = pattern.indexOf('}', i);
      if (close < 0) source += '\\{';
      else {
        const options = pattern
          .slice(i + 1, close)
          .split(',')
          .map(escapeRegExp);
        source += `(?:${options.join('|')})`;
        i = close;
      }
    } else source += escapeRegExp(char);
  }
  return new RegExp(`^${source}$`);
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/**
 * Parses multi-document YAML (or JSON) into objects. Syntax errors name the file and line;
 * empty documents are skipped; `kind: List` documents contribute their items.
 */
export function parseManifest(text: string, file: string): ManifestObject[] {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  if (!Array.isArray(documents)) return [];
  const objects: ManifestObject[] = [];
  documents.forEach((document, index) => {
    const source = { file, document: index + 1 };
    const error = document.errors[0];
    if (error) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      throw new ConfigurationError(
        `YAML syntax error in ${file} at line ${line}, column ${col}: ${error.message.split('\n')[0]}`,
      );
    }
    if (document.contents === null) return;
    if (!isMap(document.contents)) {
      const what = isSeq(document.contents) ? 'a list' : 'a scalar';
      throw new ConfigurationError(
        `${describeSource(source)} is ${what}, not a Kubernetes object. Expected a mapping with ` +
          `apiVersion, kind and metadata.name.`,
      );
    }
    const value = document.toJS({ maxAliasCount: 100 }) as Record<string, unknown>;
    if (value.kind === 'List' && Array.isArray(value.items)) {
      for (const item of value.items) objects.push({ object: checkShape(item, source), source });
    } else {
      objects.push({ object: checkShape(value, source), source });
    }
  });
  return objects;
}

function checkShape(value: unknown, source: Source): KubeObject {
  const object = value as Partial<KubeObject> | null;
  const missing = [
    typeof object?.apiVersion !== 'string' && 'apiVersion',
    typeof object?.kind !== 'string' && 'kind',
    typeof object?.metadata?.name !== 'string' && 'metadata.name',
  ].filter(Boolean);
  if (missing.length > 0) {
    throw new ConfigurationError(
      `${describeSource(source)} lacks ${missing.join(', ')}: every object needs apiVersion, ` +
        `kind and metadata.name (generateName cannot be applied).`,
    );
  }
  return object as KubeObject;
}

/** Reads and parses every manifest file. */
export function loadManifests(files: string[], cwd: string): ManifestObject[] {
  return files.flatMap((file) =>
    parseManifest(readFileSync(file, 'utf8'), path.relative(cwd, file) || file),
  );
}
