import { isDeepStrictEqual } from 'node:util';
import type { Observation, SampleOutcome } from './send';

/** The thresholds of the gate, from the analysis-* inputs. Shares are from 0 to 1. */
export interface Thresholds {
  maxErrorRate: number;
  minAgreement: number;
  minAccuracy: number;
  maxAccuracyDrop: number;
  maxLatencyRatio: number;
}

/** What one version did over all samples. */
export interface SideFigures {
  pods: string[];
  requests: number;
  errors: number;
  errorRate: number;
  /** Samples with an expected answer, and how many this version got right. */
  withExpected: number;
  correct: number;
  accuracy?: number;
  /** Over answered requests, in milliseconds. */
  p50?: number;
  p95?: number;
}

export type Metric = 'errors' | 'agreement' | 'accuracy' | 'latency';

export interface Check {
  metric: Metric;
  /** What the check required, for people: `≤ 0 %`, `≥ 90 %`. */
  threshold: string;
  /** The measured value the threshold applies to. */
  value: number;
  pass: boolean;
}

export interface Disagreement {
  line: number;
  id?: string;
  expected?: unknown;
  stable?: unknown;
  candidate?: unknown;
  /** Why an answer is missing. */
  candidateError?: string;
  stableError?: string;
}

export interface AnalysisResult {
  verdict: 'pass' | 'fail';
  samples: number;
  field: string;
  candidate: SideFigures;
  /** Absent when nothing was running before (a first deploy): only the new version is judged. */
  stable?: SideFigures;
  /** Samples the stable version answered, and of those how many the new one answered the same. */
  compared: number;
  agreeing: number;
  agreement?: number;
  checks: Check[];
  disagreements: Disagreement[];
  /** Requests the API server throttled (429) and that were sent again. */
  throttled: number;
  milliseconds: number;
}

/** Nearest-rank percentile of sorted values. */
export function percentile(sorted: number[], p: number): number | undefined {
  if (sorted.length === 0) return undefined;
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(p * sorted.length) - 1))];
}

function figures(observations: Observation[], outcomes: SampleOutcome[]): SideFigures {
  const latencies = observations
    .filter((o) => o.ok && o.milliseconds !== undefined)
    .map((o) => o.milliseconds!)
    .sort((a, b) => a - b);
  const errors = observations.filter((o) => !o.ok).length;
  let withExpected = 0;
  let correct = 0;
  outcomes.forEach(({ sample }, index) => {
    if (!sample.hasExpected) return;
    withExpected++;
    const observation = observations[index];
    if (observation.ok && isDeepStrictEqual(observation.value, sample.expected)) correct++;
  });
  return {
    pods: [...new Set(observations.map((o) => o.pod))].sort(),
    requests: observations.length,
    errors,
    errorRate: observations.length ? errors / observations.length : 0,
    withExpected,
    correct,
    accuracy: withExpected ? correct / withExpected : undefined,
    p50: percentile(latencies, 0.5),
    p95: percentile(latencies, 0.95),
  };
}

const percent = (share: number) => `${Number((share * 100).toFixed(1))} %`;

/**
 * The gate: the new version passes when its error rate is within the limit, it gives the
 * stable version's answer often enough, it is not less accurate (against the expected
 * answers) than the floor or than the stable version by more than the allowed drop, and its
 * p95 latency is within the allowed multiple of the stable one's. Checks that need the stable
 * version, or expected answers, apply only when there are some.
 */
export function judge(
  outcomes: SampleOutcome[],
  thresholds: Thresholds,
  field: string,
  extra: { throttled: number; milliseconds: number },
): AnalysisResult {
  const candidate = figures(
    outcomes.map((o) => o.candidate),
    outcomes,
  );
  const hasStable = outcomes.length > 0 && outcomes.every((o) => o.stable);
  const stable = hasStable
    ? figures(
        outcomes.map((o) => o.stable!),
        outcomes,
      )
    : undefined;
  let compared = 0;
  let agreeing = 0;
  const disagreements: Disagreement[] = [];
  for (const { sample, candidate: c, stable: s } of outcomes) {
    const agrees = s?.ok ? c.ok && isDeepStrictEqual(c.value, s.value) : undefined;
    if (s?.ok) {
      compared++;
      if (agrees) agreeing++;
    }
    const wrong = sample.hasExpected && !(c.ok && isDeepStrictEqual(c.value, sample.expected));
    if (agrees === false || !c.ok || (!hasStable && wrong)) {
      disagreements.push({
        line: sample.line,
        id: sample.id,
        ...(sample.hasExpected ? { expected: sample.expected } : {}),
        ...(s?.ok ? { stable: s.value } : s ? { stableError: s.error } : {}),
        ...(c.ok ? { candidate: c.value } : { candidateError: c.error }),
      });
    }
  }
  const agreement = hasStable && compared > 0 ? agreeing / compared : undefined;

  const checks: Check[] = [
    {
      metric: 'errors',
      threshold: `≤ ${percent(thresholds.maxErrorRate)}`,
      value: candidate.errorRate,
      pass: candidate.errorRate <= thresholds.maxErrorRate,
    },
  ];
  if (hasStable) {
    checks.push({
      metric: 'agreement',
      threshold: `≥ ${percent(thresholds.minAgreement)}`,
      value: agreement ?? 0,
      pass: (agreement ?? 0) >= thresholds.minAgreement,
    });
  }
  if (candidate.accuracy !== undefined) {
    const floor = Math.max(
      thresholds.minAccuracy,
      stable?.accuracy !== undefined ? stable.accuracy - thresholds.maxAccuracyDrop : 0,
    );
    const parts = [];
    if (stable?.accuracy !== undefined)
      parts.push(`≥ stable − ${Number((thresholds.maxAccuracyDrop * 100).toFixed(1))} pts`);
    if (thresholds.minAccuracy > 0 || !stable) parts.push(`≥ ${percent(thresholds.minAccuracy)}`);
    checks.push({
      metric: 'accuracy',
      threshold: `${parts.join(' and ')} (${percent(floor)})`,
      value: candidate.accuracy,
      // A hair of tolerance: 0.96 - 0.005 computed in floating point must not fail 0.955.
      pass: candidate.accuracy >= floor - 1e-9,
    });
  }
  if (stable?.p95 !== undefined && candidate.p95 !== undefined) {
    const ratio = candidate.p95 / Math.max(stable.p95, 0.001);
    checks.push({
      metric: 'latency',
      threshold: `p95 ≤ ${thresholds.maxLatencyRatio}× stable`,
      value: ratio,
      pass: ratio <= thresholds.maxLatencyRatio,
    });
  }
  return {
    verdict: checks.every((check) => check.pass) ? 'pass' : 'fail',
    samples: outcomes.length,
    field,
    candidate,
    stable,
    compared,
    agreeing,
    agreement,
    checks,
    disagreements,
    throttled: extra.throttled,
    milliseconds: extra.milliseconds,
  };
}
