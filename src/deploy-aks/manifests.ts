import { existsSync, readFileSync, statSync } from 'node:fs';
import * as path from 'node:path';
import * as glob from '@actions/glob';
import { isMap, isSeq, LineCounter, parseAllDocuments, type Node } from 'yaml';
import { ConfigurationError, quote } from '../common/errors';

/** A Kubernetes object as read from a manifest. */
export type KubeObject = Record<string, unknown> & {
  apiVersion: string;
  kind: string;
  metadata: Record<string, unknown> & { name?: string; namespace?: string };
};

/** Where an object came from, for error messages: file, 1-based document number and line. */
export interface Source {
  /** Path relative to the workspace (the repository root), as annotations name files. */
  file: string;
  document: number;
  /** 1-based line where the object starts. */
  line: number;
}

export interface ManifestObject {
  object: KubeObject;
  source: Source;
}

export function describeSource(source: Source): string {
  return `${source.file} (document ${source.document}, line ${source.line})`;
}

/**
 * Mistakes in manifests, each anchored to its file and line, so the runner shows them on the
 * file in a pull request (`core.error(message, { file, startLine })`).
 */
export class ManifestError extends ConfigurationError {
  constructor(
    message: string,
    readonly problems: Array<{ source: Source; message: string }>,
  ) {
    super(message);
    this.name = 'ManifestError';
  }
}

/** One mistake in one object's manifest. */
export function manifestError(source: Source, message: string): ManifestError {
  return new ManifestError(`${describeSource(source)}: ${message}`, [{ source, message }]);
}

const MANIFEST_FILE = /\.(ya?ml|json)$/i;

/**
 * Expands the `manifests` input with @actions/glob's rules, relative to `cwd`: files,
 * directories (their .yaml/.yml/.json files, recursively), globs (`*`, `**`, `?`, `[...]`) and
 * `!` exclusions, one per line. Every entry that is not an exclusion must match something; a
 * file is read once, in the order the entries name them (sorted within an entry).
 */
export async function expandManifestPaths(entries: string[], cwd: string): Promise<string[]> {
  const absolute = (pattern: string) => path.resolve(cwd, pattern);
  const exclusions = entries
    .filter((entry) => entry.startsWith('!'))
    .map((entry) => `!${absolute(entry.slice(1))}`);
  const files: string[] = [];
  const seen = new Set<string>();
  for (const entry of entries.filter((line) => !line.startsWith('!') && !line.startsWith('#'))) {
    const target = absolute(entry);
    const literal = !/[*?[]/.test(entry);
    if (literal && !existsSync(target)) {
      throw new ConfigurationError(
        `Invalid manifests entry ${quote(entry)}: no such file or directory (looked in ${cwd}). ` +
          `Expected a file, a directory or a glob such as k8s/*.yaml.`,
      );
    }
    const explicitFile = literal && statSync(target).isFile();
    const globber = await glob.create([target, ...exclusions].join('\n'), {
      matchDirectories: false,
      followSymbolicLinks: false,
    });
    const matches = (await globber.glob())
      .filter((file) => explicitFile || MANIFEST_FILE.test(file))
      .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    if (matches.length === 0) {
      throw new ConfigurationError(
        `Invalid manifests entry ${quote(entry)}: ` +
          (literal
            ? 'the directory holds no .yaml, .yml or .json file'
            : 'the pattern matches no file') +
          ` (looked in ${cwd}${exclusions.length ? ', after the ! exclusions' : ''}).`,
      );
    }
    for (const file of matches) {
      if (!seen.has(file)) {
        seen.add(file);
        files.push(file);
      }
    }
  }
  return files;
}

/**
 * Parses multi-document YAML (or JSON) into objects. Syntax errors name the file and line;
 * empty documents are skipped; `kind: List` documents contribute their items.
 */
export function parseManifest(text: string, file: string): ManifestObject[] {
  const lineCounter = new LineCounter();
  const documents = parseAllDocuments(text, { lineCounter, prettyErrors: false });
  if (!Array.isArray(documents)) return [];
  // Syntax errors first, wherever they are: they are what the author must fix first.
  documents.forEach((document, index) => {
    const error = document.errors[0];
    if (error) {
      const { line, col } = lineCounter.linePos(error.pos[0]);
      const message = `YAML syntax error in ${file} at line ${line}, column ${col}: ${error.message.split('\n')[0]}`;
      throw new ManifestError(message, [{ source: { file, document: index + 1, line }, message }]);
    }
  });
  const lineOf = (node: unknown, fallback: number) => {
    const range = (node as Node | null | undefined)?.range;
    return range ? lineCounter.linePos(range[0]).line : fallback;
  };
  const objects: ManifestObject[] = [];
  documents.forEach((document, index) => {
    const source: Source = {
      file,
      document: index + 1,
      line: lineOf(document.contents, lineCounter.linePos(document.range[0]).line),
    };
    const value = document.toJS({ maxAliasCount: 100 }) as unknown;
    if (value === null || value === undefined) return;
    if (!isMap(document.contents)) {
      const what = isSeq(document.contents) ? 'a list' : 'a scalar';
      throw manifestError(
        source,
        `this document is ${what}, not a Kubernetes object. Expected a mapping with ` +
          `apiVersion, kind and metadata.name.`,
      );
    }
    const object = value as Record<string, unknown>;
    if (object.kind === 'List' && Array.isArray(object.items)) {
      const itemNodes = document.get('items', true);
      object.items.forEach((item, at) => {
        const node = isSeq(itemNodes) ? itemNodes.items[at] : undefined;
        const itemSource = { ...source, line: lineOf(node, source.line) };
        objects.push({ object: checkShape(item, itemSource), source: itemSource });
      });
    } else {
      objects.push({ object: checkShape(object, source), source });
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
    throw manifestError(
      source,
      `the object lacks ${missing.join(', ')}: every object needs apiVersion, kind and ` +
        `metadata.name (generateName cannot be applied).`,
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
