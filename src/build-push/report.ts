import { formatBytes, formatDuration } from '../common/format';
import { shortDigest, SummaryBuilder } from '../common/summary';
import type { BuildPushResult } from './result';

/** The job summary: the image, its tags and digest, each blob's fate, the smoke test, timings. */
export function renderSummary(result: BuildPushResult): string {
  const summary = new SummaryBuilder().heading(
    result.skipped ? 'Image already current' : result.pushed ? 'Image pushed' : 'Image built',
  );
  const rows: string[][] = [
    ['Image', `\`${result.image}\``],
    ['Tags', result.tags.map((tag) => `\`${tag}\``).join(', ')],
    ['Mode', result.mode],
    ['Model digest', result.modelDigest ? `\`${result.modelDigest}\`` : '-'],
    [
      'Model',
      result.modelFiles ? `${result.modelFiles} file(s), ${formatBytes(result.modelBytes)}` : '-',
    ],
    ['Uploaded', formatBytes(result.bytesUploaded)],
  ];
  if (result.smoke) {
    rows.push([
      'Smoke test',
      result.smoke.passed
        ? `passed in ${formatDuration(result.smoke.milliseconds)}`
        : `failed: ${result.smoke.reason}`,
    ]);
  }
  if (result.skipped) rows.push(['Skipped', 'the first tag already holds this commit and model']);
  summary.table(['What', 'Value'], rows);
  if (result.blobs.length > 0) {
    summary.table(
      ['Blob', 'Digest', 'Size', 'Status'],
      result.blobs.map((blob) => [
        blob.what,
        shortDigest(blob.digest.replace(/^sha256:/, ''), 16),
        formatBytes(blob.size),
        blob.resumes ? `${blob.status}, resumed ${blob.resumes}×` : blob.status,
      ]),
    );
  }
  summary.table(
    ['Phase', 'Time'],
    result.phases.map((phase) => [phase.name, formatDuration(phase.milliseconds)]),
  );
  return summary.toMarkdown();
}
