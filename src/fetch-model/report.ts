import { formatBytes, formatDuration, formatRate } from '../common/format';
import { shortDigest, SummaryBuilder } from '../common/summary';
import type { FetchResult, FetchedFile } from './fetch';

/** The `files` output: one object per file, with the field names the README documents. */
export function filesOutput(result: FetchResult): string {
  return JSON.stringify(
    result.files.map((file) => ({
      name: file.name,
      path: file.path,
      size: file.size,
      sha256: file.sha256,
      etag: file.etag,
      'version-id': file.versionId ?? null,
      'last-modified': file.lastModified ?? null,
      'content-md5': file.contentMd5 ?? null,
      uri: file.uri,
    })),
  );
}

/** The job summary: what was fetched, how big, which digest, how fast. */
export function renderSummary(result: FetchResult, source: string): string {
  const summary = new SummaryBuilder().heading('Model fetched');
  summary.paragraph(
    `${result.files.length} file(s) from ${source} into \`${result.destination}\`; ` +
      (result.cacheHit
        ? 'every file was already in place, nothing was downloaded.'
        : `${formatBytes(result.downloadedBytes)} downloaded in ${formatDuration(result.milliseconds)}.`),
  );
  summary.table(
    ['Blob', 'Size', 'sha256', 'ETag / version', 'Status', 'Time', 'Speed'],
    result.files.map((file) => [
      `\`${file.name}\``,
      formatBytes(file.size),
      shortDigest(file.sha256, 16),
      versionLabel(file),
      statusLabel(file),
      file.status === 'cached' ? '-' : formatDuration(file.milliseconds),
      file.status === 'cached' ? '-' : formatRate(file.size, file.milliseconds),
    ]),
  );
  if (result.removed.length > 0) {
    summary.paragraph(
      `Removed from \`${result.destination}\`, not among the requested files: ` +
        result.removed.map((entry) => `\`${entry}\``).join(', ') +
        '.',
    );
  }
  summary.paragraph(`Model digest: \`${result.modelDigest}\``);
  return summary.toMarkdown();
}

function versionLabel(file: FetchedFile): string {
  return file.versionId ? `${file.etag} / ${file.versionId}` : file.etag;
}

function statusLabel(file: FetchedFile): string {
  if (file.status === 'cached') return `kept: its bytes match ${file.verifiedBy}`;
  let checks = file.md5Verified ? 'downloaded, MD5 verified' : 'downloaded';
  if (file.checksumSha256Verified) checks += ', SHA-256 checksum verified';
  if (file.retries > 0) checks += `, ${file.retries} range(s) resumed`;
  return file.redownloadReason ? `${checks} (again: ${file.redownloadReason})` : checks;
}
