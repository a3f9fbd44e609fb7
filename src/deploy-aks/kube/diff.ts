import { structuredPatch } from 'diff';

/**
 * A unified line diff of two renderings of one object, for the dry-run summary: hunks with
 * `context` unchanged lines around each change, headed `@@ -a,b +c,d @@`. The `diff` package
 * finds them in linear space (Myers' O(ND) algorithm), so a large ConfigMap costs no
 * quadratic table. Empty when nothing changed.
 */
export function lineDiff(before: string, after: string, context: number): string {
  const patch = structuredPatch('', '', withNewline(before), withNewline(after), '', '', {
    context,
  });
  return patch.hunks
    .flatMap((hunk) => [
      `@@ -${range(hunk.oldStart, hunk.oldLines)} +${range(hunk.newStart, hunk.newLines)} @@`,
      ...hunk.lines.filter((line) => !line.startsWith('\\')),
    ])
    .join('\n');
}

/** Text that ends in a newline, so a last line without one is not reported as changed. */
function withNewline(text: string): string {
  return text === '' || text.endsWith('\n') ? text : `${text}\n`;
}

/** A hunk's range as unified diffs write it: an empty range names the line before it. */
function range(start: number, lines: number): string {
  return `${lines === 0 ? start - 1 : start},${lines}`;
}
