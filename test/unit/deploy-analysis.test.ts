import { SummaryBuilder } from '../../src/common/summary';
import { parseField, valueAt } from '../../src/deploy-aks/analysis/field';
import { renderAnalysis, showValue } from '../../src/deploy-aks/analysis/report';
import type { Sample } from '../../src/deploy-aks/analysis/samples';
import type { Observation, SampleOutcome } from '../../src/deploy-aks/analysis/send';
import { judge, percentile, type Thresholds } from '../../src/deploy-aks/analysis/verdict';
import type { KubeObject } from '../../src/deploy-aks/manifests';
import {
  asManifest,
  canaryReplicasFor,
  podSelector,
  variantOf,
} from '../../src/deploy-aks/strategy/variants';

const THRESHOLDS: Thresholds = {
  maxErrorRate: 0,
  minAgreement: 0.9,
  minAccuracy: 0,
  maxAccuracyDrop: 0.02,
  maxLatencyRatio: 1.5,
};

const sample = (line: number, expected?: string): Sample => ({
  line,
  id: `s${line}`,
  method: 'POST',
  body: '{}',
  ...(expected === undefined ? {} : { expected }),
  hasExpected: expected !== undefined,
});
const answer = (value: unknown, milliseconds = 10, pod = 'p'): Observation => ({
  pod,
  ok: true,
  status: 200,
  milliseconds,
  value,
});
const failed = (error: string): Observation => ({ pod: 'p', ok: false, status: 500, error });

/** 100 samples labelled by their line, answered by `candidate` and `stable` functions. */
function outcomes(
  candidate: (line: number) => Observation,
  stable?: (line: number) => Observation,
): SampleOutcome[] {
  return Array.from({ length: 100 }, (_, i) => ({
    sample: sample(i + 1, `label-${i % 10}`),
    candidate: candidate(i),
    stable: stable?.(i),
  }));
}

describe('the analysis verdict', () => {
  const right = (i: number) => answer(`label-${i % 10}`);

  it('passes a version that answers as the stable one does', () => {
    const result = judge(outcomes(right, right), THRESHOLDS, 'label', {
      throttled: 0,
      milliseconds: 1,
    });
    expect(result.verdict).toBe('pass');
    expect(result.agreement).toBe(1);
    expect(result.candidate.accuracy).toBe(1);
    expect(result.checks.map((c) => [c.metric, c.pass])).toEqual([
      ['errors', true],
      ['agreement', true],
      ['accuracy', true],
      ['latency', true],
    ]);
    expect(result.disagreements).toEqual([]);
  });

  it('fails a version that gives other answers: agreement and accuracy fall', () => {
    const wrong = (i: number) => answer(`label-${(i * 7 + 3) % 10}`);
    const result = judge(outcomes(wrong, right), THRESHOLDS, 'label', {
      throttled: 0,
      milliseconds: 1,
    });
    expect(result.verdict).toBe('fail');
    expect(result.agreement).toBeLessThan(0.2);
    expect(result.checks.filter((c) => !c.pass).map((c) => c.metric)).toEqual([
      'agreement',
      'accuracy',
    ]);
    expect(result.disagreements[0]).toEqual({
      line: 1,
      id: 's1',
      expected: 'label-0',
      stable: 'label-0',
      candidate: 'label-3',
    });
  });

  it('allows the accuracy drop it is told to, and no more', () => {
    // The stable version gets 97 right, the new one 95: a drop of 2 points.
    const stable = (i: number) => answer(i < 3 ? 'x' : `label-${i % 10}`);
    const candidate = (i: number) => answer(i < 5 ? 'x' : `label-${i % 10}`);
    const within = judge(outcomes(candidate, stable), THRESHOLDS, 'label', {
      throttled: 0,
      milliseconds: 1,
    });
    expect(within.checks.find((c) => c.metric === 'accuracy')).toMatchObject({
      pass: true,
      value: 0.95,
      threshold: '≥ stable − 2 pts (95 %)',
    });
    const strict = judge(
      outcomes(candidate, stable),
      { ...THRESHOLDS, maxAccuracyDrop: 0.01 },
      'label',
      { throttled: 0, milliseconds: 1 },
    );
    expect(strict.checks.find((c) => c.metric === 'accuracy')?.pass).toBe(false);
  });

  it('counts errors of the new version against the limit, and as disagreements', () => {
    const candidate = (i: number) => (i === 0 ? failed('HTTP 500') : right(i));
    const result = judge(outcomes(candidate, right), THRESHOLDS, 'label', {
      throttled: 0,
      milliseconds: 1,
    });
    expect(result.candidate.errors).toBe(1);
    expect(result.checks.find((c) => c.metric === 'errors')).toMatchObject({
      pass: false,
      value: 0.01,
    });
    expect(result.disagreements).toEqual([
      { line: 1, id: 's1', expected: 'label-0', stable: 'label-0', candidateError: 'HTTP 500' },
    ]);
    const tolerant = judge(
      outcomes(candidate, right),
      { ...THRESHOLDS, maxErrorRate: 0.01 },
      'label',
      { throttled: 0, milliseconds: 1 },
    );
    expect(tolerant.verdict).toBe('pass');
  });

  it('compares p95 latencies', () => {
    const slow = (i: number) => answer(`label-${i % 10}`, i < 90 ? 10 : 40);
    const fast = (i: number) => answer(`label-${i % 10}`, i < 90 ? 10 : 20);
    const result = judge(outcomes(slow, fast), THRESHOLDS, 'label', {
      throttled: 0,
      milliseconds: 1,
    });
    expect(result.candidate.p95).toBe(40);
    expect(result.stable!.p95).toBe(20);
    expect(result.checks.find((c) => c.metric === 'latency')).toMatchObject({
      pass: false,
      value: 2,
    });
  });

  it('judges a first version on its own: errors and accuracy, no agreement or latency ratio', () => {
    const result = judge(outcomes(right), THRESHOLDS, 'label', { throttled: 0, milliseconds: 1 });
    expect(result.stable).toBeUndefined();
    expect(result.checks.map((c) => c.metric)).toEqual(['errors', 'accuracy']);
    expect(result.verdict).toBe('pass');
  });

  it('takes nearest-rank percentiles', () => {
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.5)).toBe(5);
    expect(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 0.95)).toBe(10);
    expect(percentile([], 0.5)).toBeUndefined();
  });
});

describe('the analysis in the job summary', () => {
  it('shows the table and the disagreeing samples, with answers that cannot shape the page', () => {
    const wrong = (i: number) =>
      answer(i === 0 ? '`x` | <img src=https://evil.example/a.png>' : `label-${(i + 1) % 10}`);
    const result = judge(
      outcomes(wrong, (i) => answer(`label-${i % 10}`)),
      THRESHOLDS,
      'label',
      { throttled: 3, milliseconds: 1500 },
    );
    const summary = new SummaryBuilder();
    renderAnalysis(summary, result, { candidate: 'canary', stable: 'baseline' });
    const text = summary.toMarkdown();
    expect(text).toContain('#### Analysis: FAIL (100 samples, field `label`)');
    expect(text).toContain('| Metric | Baseline | Canary | Threshold | Verdict |');
    expect(text).toContain(
      '| Agreement with baseline | — | 0.0 % (0 of 100) | ≥ 90 % | **fail** |',
    );
    expect(text).toContain('3 throttled request(s) (429) sent again');
    expect(text).toContain('the first 20 below');
    // The pipe is escaped, backticks cannot close the code span, the value is cut short.
    expect(text).toContain('`"\'x\' \\| <img src=https://evil.example/a.png>"`');
    expect(showValue('y'.repeat(100))).toBe(`\`"${'y'.repeat(56)}...\``);
  });
});

describe('answer fields', () => {
  it('finds values by JSON path, and says when there is none', () => {
    const body = { results: [{ label: '7 seven', top: [] }], model: { 'a b': 1 } };
    expect(valueAt(body, parseField('results[0].label'))).toEqual({
      found: true,
      value: '7 seven',
    });
    expect(valueAt(body, parseField('$.model["a b"]'))).toEqual({ found: true, value: 1 });
    expect(valueAt(body, parseField('results[1].label'))).toEqual({ found: false });
    expect(valueAt(body, parseField(''))).toEqual({ found: true, value: body });
  });
});

describe('canary, baseline and green objects', () => {
  const deployment: KubeObject = {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: {
      name: 'web',
      namespace: 'ai',
      labels: { app: 'web' },
      annotations: { team: 'ml', 'deployment.kubernetes.io/revision': '4' },
      uid: 'u',
      resourceVersion: '9',
      managedFields: [],
    },
    spec: {
      replicas: 4,
      selector: { matchLabels: { app: 'web' } },
      template: {
        metadata: { labels: { app: 'web' } },
        spec: { containers: [{ name: 'app', image: 'r/app@sha256:1' }] },
      },
    },
    status: { replicas: 4 },
  };

  it('names and labels them as Azure/k8s-deploy does', () => {
    const canary = variantOf(asManifest(deployment), 'canary', 1, 'canary');
    expect(canary.metadata).toEqual({
      name: 'web-canary',
      namespace: 'ai',
      labels: { app: 'web', 'workflow/version': 'canary' },
      annotations: {
        team: 'ml',
        'workflow/version': 'canary',
        'ai-app-delivery.github.io/strategy': 'canary',
        'ai-app-delivery.github.io/stable-workload': 'web',
      },
    });
    expect(canary.spec).toMatchObject({
      replicas: 1,
      selector: { matchLabels: { app: 'web', 'workflow/version': 'canary' } },
      template: { metadata: { labels: { app: 'web', 'workflow/version': 'canary' } } },
    });
    expect(canary).not.toHaveProperty('status');
    expect(podSelector(canary)).toBe('app=web,workflow/version=canary');
    const green = variantOf(deployment, 'green', undefined, 'blue-green');
    expect(green.metadata.name).toBe('web-green');
    expect(green.metadata.labels).toEqual({ app: 'web', 'k8s.deploy.color': 'green' });
    expect((green.spec as { replicas: number }).replicas).toBe(4);
    // The original is not changed.
    expect((deployment.spec as { selector: unknown }).selector).toEqual({
      matchLabels: { app: 'web' },
    });
  });

  it('sizes the canary to about the share of the Service pods it is asked for', () => {
    // c / (stable + 2c): 1 of 4 pods beside 2 stable ones, 1 of 6 beside 4, 3 of 16 beside 10.
    expect(canaryReplicasFor(20, 2)).toBe(1);
    expect(canaryReplicasFor(20, 4)).toBe(1);
    expect(canaryReplicasFor(20, 10)).toBe(3);
    expect(canaryReplicasFor(40, 2)).toBe(4);
    expect(canaryReplicasFor(1, 2)).toBe(1);
    expect(canaryReplicasFor(49, 100)).toBe(100);
  });
});
