import { formatDuration } from '../common/format';
import { SummaryBuilder } from '../common/summary';
import type { DeployResult } from './deploy';
import type { RolloutFailure } from './kube/rollout';
import { analysisOutput, renderAnalysis } from './analysis/report';
import type { ProgressiveResult } from './strategy/context';

/** The `resources` output: `Kind/name` of every object applied, in apply order. */
export function resourcesOutput(result: DeployResult): string {
  return JSON.stringify(result.applied.map((resource) => `${resource.kind}/${resource.name}`));
}

/** The revision output: the first Deployment's deployment.kubernetes.io/revision. */
export function revisionOutput(result: DeployResult): string {
  const outcome = (result.rollback?.result ?? result.rollout)?.workloads.find(
    (w) => w.ref.kind === 'Deployment',
  );
  return outcome?.revision ?? '';
}

/** What failed in a rollout, with the last log lines of the failing container. */
export function rolloutFailureText(failure: RolloutFailure): string {
  let message = `Rollout of ${failure.ref.kind}/${failure.ref.name} in namespace ${failure.ref.namespace} failed: ${failure.message}.`;
  if (failure.logs?.trim()) {
    message += ` Last log lines: ${failure.logs.trim().split('\n').slice(-5).join(' | ')}`;
  }
  return message;
}

/** The message the step fails with when the rollout failed; undefined when it did not. */
export function failureMessage(result: DeployResult): string | undefined {
  const failure = result.rollout?.failure;
  if (!failure) return undefined;
  const message = rolloutFailureText(failure);
  if (!result.rollback)
    return `${message} Rollback is off (rollback-on-failure: false); the failing version stays.`;
  const restored = result.rollback.restored.map((ref) => `${ref.kind}/${ref.name}`);
  if (result.rollback.error) {
    return `${message} Rolled back ${restored.join(', ')}, but the restored version did not come up either: ${result.rollback.error}.`;
  }
  if (restored.length > 0)
    return `${message} Rolled back ${restored.join(', ')} to the previous pod template, which is running again.`;
  return `${message} Nothing to roll back: ${result.rollback.leftInPlace.join(', ') || 'no workload'} did not exist before this run.`;
}

const OUTCOME_LABEL = { created: 'created', configured: 'configured', unchanged: 'unchanged' };

/**
 * The job summary: what was applied, images, rollout time, endpoints, and any failure. With a
 * `title`, it is one phase of a canary or blue-green action, under a smaller heading.
 */
export function renderSummary(result: DeployResult, cluster: string, title?: string): string {
  const summary = new SummaryBuilder();
  const failed = Boolean(result.rollout?.failure);
  const state = result.dryRun
    ? 'Deployment dry run (nothing changed)'
    : failed
      ? result.rollback?.restored.length && !result.rollback.error
        ? 'Deployment failed and was rolled back'
        : 'Deployment failed'
      : 'Deployed';
  summary.heading(title ? `${title}: ${state.toLowerCase()}` : state, title ? 4 : 3);
  summary.paragraph(
    `Cluster: ${cluster}; namespace \`${result.rendered.namespace}\`; bundle \`${result.bundlePath}\`.`,
  );
  const outcomes = new Map(
    (result.rollout?.workloads ?? []).map((w) => [`${w.ref.kind}/${w.ref.name}`, w]),
  );
  summary.table(
    ['Resource', 'Namespace', 'Result', 'Rollout'],
    result.applied.map((resource) => {
      const outcome = outcomes.get(`${resource.kind}/${resource.name}`);
      const failure = result.rollout?.failure;
      const failedHere =
        failure && failure.ref.kind === resource.kind && failure.ref.name === resource.name;
      return [
        `${resource.kind}/${resource.name}`,
        resource.namespace ?? '-',
        `${OUTCOME_LABEL[resource.outcome]}${result.dryRun ? ' (dry run)' : ''}`,
        failedHere
          ? `failed: ${failure.problem?.reason ?? (failure.timedOut ? 'timed out' : 'see below')}`
          : outcome
            ? outcome.state === 'done'
              ? `ready in ${formatDuration(outcome.milliseconds ?? 0)}${outcome.revision ? ` (revision ${outcome.revision})` : ''}`
              : outcome.message
            : '-',
      ];
    }),
  );
  const images = [...new Set(result.rendered.objects.flatMap(({ object }) => imagesOf(object)))];
  if (images.length > 0)
    summary.paragraph(`Images: ${images.map((image) => `\`${image}\``).join(', ')}`);
  if (result.rollout && !failed)
    summary.paragraph(`Rollout took ${formatDuration(result.rollout.milliseconds)}.`);
  if (result.endpoints.length > 0) {
    summary.table(
      ['Service', 'Address', 'Ports'],
      result.endpoints.map((e) => [e.service, e.address, e.ports.join(', ')]),
    );
  }
  const failure = result.rollout?.failure;
  if (failure) {
    summary.heading('What failed', 4);
    summary.paragraph(`${failure.ref.kind}/${failure.ref.name}: ${failure.message}`);
    if (failure.logs?.trim())
      summary.paragraph(
        `Last log lines of \`${failure.problem?.pod}\`:\n\n\`\`\`\n${failure.logs.trim()}\n\`\`\``,
      );
    if (result.rollback) {
      summary.heading('What was restored', 4);
      const restored = result.rollback.restored.map((ref) => `${ref.kind}/${ref.name}`);
      summary.paragraph(
        restored.length > 0
          ? `${restored.join(', ')} back on the pod template from before this run` +
              (result.rollback.error
                ? `, but it did not come up: ${result.rollback.error}`
                : ', running again.')
          : 'Nothing: no changed workload had a previous version.',
      );
      if (result.rollback.leftInPlace.length > 0) {
        summary.paragraph(
          `Created by this run and left in place: ${result.rollback.leftInPlace.join(', ')}.`,
        );
      }
    } else {
      summary.paragraph('Rollback is off; the failing version stays.');
    }
  }
  if (result.dryRun) {
    for (const resource of result.applied.filter((r) => r.diff)) {
      summary.paragraph(
        `<details><summary>${resource.kind}/${resource.name} (${resource.outcome})</summary>\n\n\`\`\`diff\n${resource.diff}\n\`\`\`\n</details>`,
      );
    }
  }
  return summary.toMarkdown();
}

function imagesOf(object: Record<string, unknown>): string[] {
  const found: string[] = [];
  const visit = (value: unknown, key?: string) => {
    if (key === 'image' && typeof value === 'string') found.push(value);
    else if (Array.isArray(value)) value.forEach((item) => visit(item));
    else if (value && typeof value === 'object')
      for (const [k, v] of Object.entries(value)) visit(v, k);
  };
  visit(object.spec);
  return found;
}

const STRATEGY_NAME = { canary: 'Canary', 'blue-green': 'Blue-green' };

/** The job summary of a canary or blue-green action: versions, analysis, phases, outcome. */
export function renderProgressiveSummary(result: ProgressiveResult, cluster: string): string {
  const summary = new SummaryBuilder();
  const name = STRATEGY_NAME[result.strategy];
  const verdict = result.analysis ? `analysis ${result.analysis.verdict}` : undefined;
  const outcome = result.outcome ?? (result.failure ? 'failed' : undefined);
  summary.heading(
    `${name} ${result.action}${[verdict, outcome].filter(Boolean).length ? `: ${[verdict, outcome].filter(Boolean).join(', ')}` : ''}`,
  );
  summary.paragraph(`Cluster: ${cluster}; namespace \`${result.namespace}\`.`);
  if (result.pairs.length > 0) {
    summary.table(
      ['Workload', 'New version', 'Compared with', 'Pods each'],
      result.pairs.map((pair) => [
        `Deployment/${pair.workload}`,
        `Deployment/${pair.candidate}`,
        pair.stable ? `Deployment/${pair.stable}` : 'nothing (first deploy)',
        String(pair.replicas),
      ]),
    );
  }
  if (result.analysis) {
    renderAnalysis(
      summary,
      result.analysis,
      result.strategy === 'canary'
        ? { candidate: 'canary', stable: 'baseline' }
        : { candidate: 'green', stable: 'stable' },
    );
  }
  const parts = [summary.toMarkdown()];
  for (const phase of result.phases) parts.push(renderSummary(phase.deploy, cluster, phase.title));
  const tail = new SummaryBuilder();
  for (const move of result.routed) tail.paragraph(`Service/${move.service} routed to ${move.to}.`);
  if (result.removed.length > 0) tail.paragraph(`Deleted: ${result.removed.join(', ')}.`);
  if (result.failure) {
    tail.heading('What failed', 4);
    tail.paragraph(result.failure);
  } else if (
    result.action === 'deploy' &&
    !result.outcome &&
    !result.phases.at(-1)?.deploy.dryRun
  ) {
    tail.paragraph(
      `The new version runs beside the stable one. Run this action with \`action: promote\` to roll it out, or \`action: reject\` to remove it.`,
    );
  }
  parts.push(tail.toMarkdown());
  return parts.filter((part) => part.trim()).join('\n');
}

/** Outputs of a canary or blue-green action, in the shape of a basic deploy's. */
export function progressiveOutputs(result: ProgressiveResult): Record<string, string> {
  const applied = result.phases.flatMap((phase) => phase.deploy.applied);
  const resources = [...new Set(applied.map((resource) => `${resource.kind}/${resource.name}`))];
  const stable = result.phases.filter((phase) => phase.stable).at(-1);
  const last = result.phases.at(-1);
  return {
    resources: JSON.stringify(resources),
    revision: stable ? revisionOutput(stable.deploy) : '',
    'rolled-back': String(
      result.phases.some((phase) => Boolean(phase.deploy.rollback?.restored.length)),
    ),
    'service-endpoints': JSON.stringify((last?.deploy.endpoints ?? []).map((e) => e.address)),
    analysis: result.analysis ? analysisOutput(result.analysis) : '',
    verdict: result.analysis?.verdict ?? '',
  };
}
