import { ConfigurationError, quote } from '../../common/errors';

/** Where in an answer the compared value is: object keys and array indexes. */
export type FieldPath = Array<string | number>;

/**
 * Parses analysis-field: a JSON path such as `label`, `results[0].label`, `results.0.label`
 * or `$.data["class name"]`. Empty means the whole answer.
 */
export function parseField(text: string): FieldPath {
  const source = text.trim().replace(/^\$/, '');
  const step = /\.?([A-Za-z_$][\w$-]*)|\.?(\d+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]/y;
  const path: FieldPath = [];
  while (step.lastIndex < source.length) {
    const match = step.exec(source);
    if (!match) {
      throw new ConfigurationError(
        `Invalid analysis-field ${quote(text)}. Expected a JSON path such as label, ` +
          `results[0].label or $.data["class name"] (empty compares the whole answer).`,
      );
    }
    const [, name, dotted, indexed, quoted] = match;
    path.push(
      name ?? (quoted !== undefined ? (JSON.parse(quoted) as string) : Number(dotted ?? indexed)),
    );
  }
  return path;
}

/** The value at `path`, or found: false when the answer has nothing there. */
export function valueAt(value: unknown, path: FieldPath): { found: boolean; value?: unknown } {
  let node = value;
  for (const key of path) {
    if (typeof key === 'number') {
      if (!Array.isArray(node) || key >= node.length) return { found: false };
      node = node[key];
    } else {
      if (!node || typeof node !== 'object' || Array.isArray(node) || !(key in node))
        return { found: false };
      node = (node as Record<string, unknown>)[key];
    }
  }
  return { found: true, value: node };
}

/** The path as the summary shows it: `results[0].label`. */
export function showField(path: FieldPath): string {
  if (path.length === 0) return '(the whole answer)';
  return path
    .map((key, index) =>
      typeof key === 'number'
        ? `[${key}]`
        : /^[A-Za-z_$][\w$-]*$/.test(key)
          ? `${index === 0 ? '' : '.'}${key}`
          : `[${JSON.stringify(key)}]`,
    )
    .join('');
}
