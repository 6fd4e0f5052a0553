// Parsing of the human units experiment files use: durations ("500ms", "5s", "2m") and sizes ("512M").
// Pure; shared by the schemas and by CLI options.

const DURATION = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h)$/;
const DURATION_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

/** Milliseconds from "250ms", "1.5s", "2m", "1h", or a bare number of seconds. */
export function parseDuration(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isFinite(value) && value >= 0 ? value * 1000 : undefined;
  const m = DURATION.exec(value.trim());
  if (!m) return undefined;
  return Number(m[1]) * DURATION_MS[m[2]!]!;
}

const SIZE = /^(\d+)\s*([KMGT]i?B?|[kmgt])?$/;
const SIZE_MIB: Record<string, number> = { K: 1 / 1024, M: 1, G: 1024, T: 1024 * 1024 };

/** MiB from "512M", "1G", "2GiB", or a bare number of MiB. */
export function parseSizeMiB(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  const m = SIZE.exec(value.trim());
  if (!m) return undefined;
  const unit = (m[2] ?? 'M').charAt(0).toUpperCase();
  const mib = Number(m[1]) * SIZE_MIB[unit]!;
  return Number.isInteger(mib) && mib > 0 ? mib : undefined;
}

export function formatDuration(ms: number): string {
  if (ms < 1000) return `${Math.round(ms)}ms`;
  if (ms < 120_000) return `${(ms / 1000).toFixed(1)}s`;
  return `${Math.floor(ms / 60_000)}m${Math.round((ms % 60_000) / 1000)}s`;
}
