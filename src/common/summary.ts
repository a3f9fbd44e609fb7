/**
 * A job summary built as plain Markdown, so logic modules can produce it without
 * @actions/core and tests can read it; main.ts hands it to core.summary.
 */
export class SummaryBuilder {
  private readonly parts: string[] = [];

  heading(text: string, level = 3): this {
    this.parts.push(`${'#'.repeat(level)} ${text}\n`);
    return this;
  }

  paragraph(text: string): this {
    this.parts.push(`${text}\n`);
    return this;
  }

  table(header: string[], rows: string[][]): this {
    const line = (cells: string[]) => `| ${cells.map(escapeCell).join(' | ')} |`;
    this.parts.push(
      [line(header), `| ${header.map(() => '---').join(' | ')} |`, ...rows.map(line)].join('\n') +
        '\n',
    );
    return this;
  }

  toMarkdown(): string {
    return this.parts.join('\n');
  }
}

function escapeCell(cell: string): string {
  return cell.replace(/\|/g, '\\|').replace(/\n/g, ' ');
}

/** Shows a long hex digest in a table as its first characters, the full value in a tooltip-free code span. */
export function shortDigest(hex: string, length = 12): string {
  return `\`${hex.slice(0, length)}\``;
}
