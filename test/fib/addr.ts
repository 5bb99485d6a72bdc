// Text to bytes for the test agent and tests (the FIB itself never parses text).
import { isIPv4, isIPv6 } from 'node:net';

export function parseAddress(s: string, family?: 4 | 6): Uint8Array {
  if (isIPv4(s) && family !== 6) return Uint8Array.from(s.split('.').map(Number));
  if (!isIPv6(s) || family === 4) throw new Error(`not an IPv${family ?? ''} address: ${s}`);
  const [head = '', tail] = s.split('::');
  const groups = (x: string): number[] => (x === '' ? [] : x.split(':').map((g) => parseInt(g, 16)));
  const h = groups(head);
  const t = tail === undefined ? [] : groups(tail);
  const all = tail === undefined ? h : [...h, ...new Array<number>(8 - h.length - t.length).fill(0), ...t];
  const out = new Uint8Array(16);
  all.forEach((g, i) => {
    out[i * 2] = g >> 8;
    out[i * 2 + 1] = g & 255;
  });
  return out;
}

export function parsePrefix(s: string): { family: 4 | 6; addr: Uint8Array; len: number } {
  const [a = '', l] = s.split('/');
  const family = a.includes(':') ? 6 : 4;
  const len = l === undefined ? (family === 4 ? 32 : 128) : Number(l);
  return { family, addr: parseAddress(a, family), len };
}
