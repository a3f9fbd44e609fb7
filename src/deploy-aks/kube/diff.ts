/**
 * A unified line diff (longest common subsequence), small and dependency-free, for the dry-run
 * summary. Inputs are single Kubernetes objects, so the quadratic table stays small.
 */
export function lineDiff(before: string, after: string, context: number): string {
  const a = before === '' ? [] : before.replace(/\n$/, '').split('\n');
  const b = after === '' ? [] : after.replace(/\n$/, '').split('\n');
  const n = a.length;
  const m = b.length;
  const lcs: number[][] = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      lcs[i][j] = a[i] === b[j] ? lcs[i + 1][j + 1] + 1 : Math.max(lcs[i + 1][j], lcs[i][j + 1]);
    }
  }
  const lines: Array<{ mark: ' ' | '-' | '+'; text: string }> = [];
  let i = 0;
  let j = 0;
  while (i < n || j < m) {
    if (i < n && j < m && a[i] === b[j]) {
      lines.push({ mark: ' ', text: a[i] });
      i++;
      j++;
    } else if (j < m && (i === n || lcs[i][j + 1] >= lcs[i + 1][j])) {
      lines.push({ mark: '+', text: b[j++] });
    } else {
      lines.push({ mark: '-', text: a[i++] });
    }
  }
  const changed = lines.map((line) => line.mark !== ' ');
  if (!changed.includes(true)) return '';
  const keep = lines.map((_, index) =>
    changed.slice(Math.max(0, index - context), index + context + 1).includes(true),
  );
  const out: string[] = [];
  lines.forEach((line, index) => {
    if (keep[index]) out.push(`${line.mark}${line.text}`);
    else if (keep[index - 1]) out.push('@@');
  });
  return out.join('\n');
}
