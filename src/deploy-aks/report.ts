import { formatDuration } from '../common/format';
import { SummaryBuilder } from '../common/summary';
import type { DeployResult } from './deploy';

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

/** The message the step fails with when the rollout failed; undefined when it did not. */
export function failureMessage(result: DeployResult): string | undefined {
  const failure = result.rollout?.failure;
  if (!failure) return undefined;
  let message = `Rollout of ${failure.ref.kind}/${failure.ref.name} in namespace ${failure.ref.namespace} failed: ${failure.message}.`;
  if (failure.logs?.trim()) {
    message += ` Last log lines: ${failure.logs.trim().split('\n').slice(-5).join(' | ')}`;
  }
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

/** The job summary: what was applied, images, rollout time, endpoints, and any failure. */
export function renderSummary(result: DeployResult, cluster: string): string {
  const summary = new SummaryBuilder();
  const failed = Boolean(result.rollout?.failure);
  summary.heading(
    result.dryRun
      ? 'Deployment dry run (nothing changed)'
      : failed
        ? result.rollback?.restored.length && !result.rollback.error
          ? 'Deployment failed and was rolled back'
          : 'Deployment failed'
        : 'Deployed',
  );
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
      return [
        `${resource.kind}/${resource.name}`,
        resource.namespace ?? '-',
        `${OUTCOME_LABEL[resource.outcome]}${result.dryRun ? ' (dry run)' : ''}`,
        outcome
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
