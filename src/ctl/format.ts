// Text helpers for skeinctl's human output: aligned tables and "when, and how long ago".
// Times print in UTC, so two operators on different machines read the same thing.

/** "2026-11-21 03:00:00 (5m ago)"; the input as is when it is not a time. */
export function humaneSince(iso: string, now: Date): string {
  const t = new Date(iso);
  if (iso === '' || Number.isNaN(t.getTime())) return iso === '' ? '-' : iso;
  const stamp = t.toISOString().replace('T', ' ').replace(/\.\d+Z$/, '').replace(/Z$/, '');
  const deltaSec = Math.round((now.getTime() - t.getTime()) / 1000);
  const rel = deltaSec >= 0 ? `${humaneDuration(deltaSec)} ago` : `in ${humaneDuration(-deltaSec)}`;
  return `${stamp} (${rel})`;
}

/** 42s, 5m, 5m12s, 3h4m, 2d3h: the two largest units, no zero second unit. */
export function humaneDuration(totalSec: number): string {
  const s = Math.floor(totalSec);
  if (s < 60) return `${s}s`;
  const units: [string, number][] = [['d', 86400], ['h', 3600], ['m', 60], ['s', 1]];
  const parts: string[] = [];
  let rest = s;
  for (const [name, size] of units) {
    const n = Math.floor(rest / size);
    rest -= n * size;
    if (n > 0 || parts.length > 0) parts.push(n > 0 ? `${n}${name}` : '');
    if (parts.length === 2) break;
  }
  return parts.filter((p) => p !== '').join('');
}

/**
 * Columns padded to their widest cell. `boxed` draws `+---+` borders and `|` separators (the look of
 * `calicoctl node status`); otherwise columns are separated by two spaces and trailing blanks are trimmed.
 */
export function table(headers: readonly string[], rows: readonly (readonly string[])[], boxed = false): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  if (boxed) {
    const rule = `+${widths.map((w) => '-'.repeat(w + 2)).join('+')}+`;
    const line = (cells: readonly string[]): string => `|${widths.map((w, i) => ` ${(cells[i] ?? '').padEnd(w)} `).join('|')}|`;
    return [rule, line(headers), rule, ...rows.map(line), rule].join('\n') + '\n';
  }
  const line = (cells: readonly string[]): string => widths.map((w, i) => (cells[i] ?? '').padEnd(w)).join('  ').trimEnd();
  return [line(headers), ...rows.map(line)].join('\n') + '\n';
}

/** "key:  value" lines with the values aligned. */
export function fields(pairs: readonly (readonly [string, string])[], indent = '', minKeyWidth = 0): string {
  const w = Math.max(minKeyWidth, ...pairs.map(([k]) => k.length + 1));
  return pairs.map(([k, v]) => `${indent}${`${k}:`.padEnd(w)}  ${v}`).join('\n') + '\n';
}
