// Text forms of addresses and prefixes, for views and logs only (never on the programming path).
import type { Prefix } from './types.js';

/** 4 bytes as dotted quad, 16 bytes as RFC 5952 text (the form `ip -j route` prints). */
export function formatAddress(a: Uint8Array): string {
  if (a.length === 4) return `${a[0]}.${a[1]}.${a[2]}.${a[3]}`;
  if (a.length !== 16) throw new RangeError(`an address is 4 or 16 bytes, not ${a.length}`);
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push((a[i]! << 8) | a[i + 1]!);
  // RFC 5952 §4.2: compress the longest run (first if tied) of two or more zero groups
  let best = -1, bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) { i++; continue; }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen && j - i >= 2) { best = i; bestLen = j - i; }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  // RFC 5952 §5 (IPv4-mapped) is left as hex: fib/ never programs mapped addresses
  return best < 0 ? hex.join(':') : `${hex.slice(0, best).join(':')}::${hex.slice(best + bestLen).join(':')}`;
}

export function formatPrefix(p: Prefix): string {
  return `${formatAddress(p.addr.subarray(0, p.family === 4 ? 4 : 16))}/${p.len}`;
}
