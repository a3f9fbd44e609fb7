/** Human-readable sizes, rates and durations for logs and job summaries. */

const UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];

export function formatBytes(bytes: number): string {
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < UNITS.length - 1) {
    value /= 1024;
    unit++;
  }
  return unit === 0 ? `${bytes} B` : `${value.toFixed(value < 10 ? 2 : 1)} ${UNITS[unit]}`;
}

/** Megabytes (10^6) per second, the unit network tools print. */
export function formatRate(bytes: number, milliseconds: number): string {
  if (milliseconds <= 0) return '-';
  const perSecond = bytes / (milliseconds / 1000);
  if (perSecond < 1e6) return `${(perSecond / 1e3).toFixed(1)} kB/s`;
  return `${(perSecond / 1e6).toFixed(1)} MB/s`;
}

export function formatDuration(milliseconds: number): string {
  if (milliseconds < 1000) return `${Math.round(milliseconds)} ms`;
  if (milliseconds < 60_000) return `${(milliseconds / 1000).toFixed(2)} s`;
  const minutes = Math.floor(milliseconds / 60_000);
  const seconds = Math.round((milliseconds % 60_000) / 1000);
  return `${minutes}m ${seconds}s`;
}
