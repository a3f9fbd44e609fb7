import { formatDuration } from '../../common/format';
import type { SummaryBuilder } from '../../common/summary';
import type { AnalysisResult, Check, Metric, SideFigures } from './verdict';

/** Disagreeing samples listed in the job summary, and in the `analysis` output. */
const SUMMARY_DISAGREEMENTS = 20;
const OUTPUT_DISAGREEMENTS = 50;

const percent = (share: number | undefined) =>
  share === undefined ? '—' : `${(share * 100).toFixed(1)} %`;
const ms = (value: number | undefined) => (value === undefined ? '—' : `${Math.round(value)} ms`);

/**
 * A value from a pod's answer, for the summary: short, and in a code span, so nothing an app
 * answers (Markdown, HTML, a very long string) can shape the page.
 */
export function showValue(value: unknown): string {
  if (value === undefined) return '—';
  let text = JSON.stringify(value) ?? String(value);
  if (text.length > 60) text = `${text.slice(0, 57)}...`;
  return `\`${text.replace(/`/g, "'")}\``;
}

/**
 * The analysis as a table (per metric: stable, new, threshold, verdict) and the samples the two
 * versions answered differently. `names` are what the two sides are called: canary and
 * baseline, or green and stable.
 */
export function renderAnalysis(
  summary: SummaryBuilder,
  analysis: AnalysisResult,
  names: { candidate: string; stable: string },
): void {
  const { candidate, stable } = analysis;
  summary.heading(
    `Analysis: ${analysis.verdict === 'pass' ? 'pass' : 'FAIL'} (${analysis.samples} samples, field \`${analysis.field}\`)`,
    4,
  );
  const check = (metric: Metric): Check | undefined =>
    analysis.checks.find((c) => c.metric === metric);
  const verdict = (metric: Metric) => {
    const found = check(metric);
    return found ? (found.pass ? 'pass' : '**fail**') : '—';
  };
  const count = (share: number | undefined, part: number, whole: number) =>
    share === undefined ? '—' : `${percent(share)} (${part} of ${whole})`;
  const rows: string[][] = [
    [
      'Errors (non-2xx, not JSON, no field)',
      stable ? count(stable.errorRate, stable.errors, stable.requests) : '—',
      count(candidate.errorRate, candidate.errors, candidate.requests),
      check('errors')?.threshold ?? '—',
      verdict('errors'),
    ],
  ];
  if (stable) {
    rows.push([
      `Agreement with ${names.stable}`,
      '—',
      count(analysis.agreement, analysis.agreeing, analysis.compared),
      check('agreement')?.threshold ?? '—',
      verdict('agreement'),
    ]);
  }
  if (candidate.accuracy !== undefined) {
    const accuracy = (side: SideFigures) => count(side.accuracy, side.correct, side.withExpected);
    rows.push([
      'Accuracy (expected answers)',
      stable ? accuracy(stable) : '—',
      accuracy(candidate),
      check('accuracy')?.threshold ?? '—',
      verdict('accuracy'),
    ]);
  }
  rows.push(['Latency p50', ms(stable?.p50), ms(candidate.p50), '—', '—']);
  const ratio = check('latency');
  rows.push([
    'Latency p95',
    ms(stable?.p95),
    `${ms(candidate.p95)}${ratio ? ` (${ratio.value.toFixed(2)}×)` : ''}`,
    ratio?.threshold ?? '—',
    verdict('latency'),
  ]);
  summary.table(
    ['Metric', capitalise(names.stable), capitalise(names.candidate), 'Threshold', 'Verdict'],
    rows,
  );
  summary.paragraph(
    `Sent through the API server's pod proxy to ${candidate.pods.length} ${names.candidate} pod(s)` +
      (stable
        ? ` and ${stable.pods.length} ${names.stable} pod(s), each sample to both at once`
        : '') +
      `, in ${formatDuration(analysis.milliseconds)}` +
      (analysis.throttled ? `; ${analysis.throttled} throttled request(s) (429) sent again.` : '.'),
  );
  if (analysis.disagreements.length > 0) {
    const shown = analysis.disagreements.slice(0, SUMMARY_DISAGREEMENTS);
    summary.paragraph(
      `Samples answered differently${stable ? '' : ' from the expected answer'}, or not at all: ` +
        `${analysis.disagreements.length}` +
        (shown.length < analysis.disagreements.length ? ` (the first ${shown.length} below)` : '') +
        '.',
    );
    summary.table(
      ['Line', 'Sample', 'Expected', capitalise(names.stable), capitalise(names.candidate)],
      shown.map((d) => [
        String(d.line),
        d.id ?? '',
        'expected' in d ? showValue(d.expected) : '—',
        d.stableError ? `error: ${d.stableError}` : showValue(d.stable),
        d.candidateError ? `error: ${d.candidateError}` : showValue(d.candidate),
      ]),
    );
  }
}

/** The `analysis` output: figures, checks and the first disagreements, as JSON. */
export function analysisOutput(analysis: AnalysisResult): string {
  return JSON.stringify({
    ...analysis,
    disagreements: analysis.disagreements.slice(0, OUTPUT_DISAGREEMENTS),
    disagreementCount: analysis.disagreements.length,
  });
}

function capitalise(text: string): string {
  return text.charAt(0).toUpperCase() + text.slice(1);
}
