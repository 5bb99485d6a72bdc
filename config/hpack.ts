// HPACK (RFC 7541) for h2client.ts: a decoder for the header blocks etcd sends, and an encoder that writes every field
// as a literal, so no encoder table is kept (RFC 7541 §6.2.2, "literal header field without indexing": the peer's
// table is never touched by us).
//
// Why our own and not an npm package: the one maintained HPACK package with any use (hpack.js) was last published in
// 2016, works on streams and pulls in four dependencies; what etcd's headers need is ~200 lines. etcd (Go's
// golang.org/x/net/http2 under grpc-go) Huffman-encodes the strings it sends and indexes :status and content-type in
// its dynamic table, so both the Huffman code (Appendix B) and the dynamic table (§2.3.2, §4) are needed. Speed is
// not the point here: headers come once at the start and once at the end of a call, never per watch event.

/** A header block that is not valid HPACK (RFC 7541 §2.3.3, §4.2, §5.1, §5.2): the connection must end (COMPRESSION_ERROR). */
export class HpackError extends Error {
  /** `tooLarge`: valid HPACK, but the header list it makes is over our limit */
  constructor(message: string, readonly tooLarge = false) {
    super(message);
    this.name = 'HpackError';
  }
}

// RFC 7541 Appendix A: the static table, index 1 to 61.
const STATIC: readonly (readonly [string, string])[] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

// RFC 7541 Appendix B: the bit length of each symbol's Huffman code, symbols 0-255 and EOS (256). The code is
// canonical (within one length, codes count up in symbol order; each length starts where the shorter ones left
// off, shifted), so the lengths alone give every code: huffmanCodes() rebuilds them, and the tests check the codes
// the RFC prints (e.g. '0' = 00000, 'a' = 00011, ' ' = 010100, EOS = 30 ones).
export const HUFFMAN_LENGTHS: readonly number[] = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];
const EOS = 256;

/** Each symbol's code (the low HUFFMAN_LENGTHS[sym] bits), rebuilt from the lengths as a canonical code. */
export function huffmanCodes(): number[] {
  const order = HUFFMAN_LENGTHS.map((len, sym) => ({ len, sym })).sort((a, b) => a.len - b.len || a.sym - b.sym);
  const codes = new Array<number>(HUFFMAN_LENGTHS.length).fill(0);
  let code = 0;
  let len = order[0]!.len;
  for (const s of order) {
    code *= 2 ** (s.len - len); // shifts of up to 30 bits: multiply, as << is 32-bit signed
    len = s.len;
    codes[s.sym] = code;
    code++;
  }
  return codes;
}

// The decoding tree: node n's children at [2n] (bit 0) and [2n+1] (bit 1); a child > 0 is a node, < 0 a leaf for
// symbol -child - 1. Built on the first Huffman string (a client whose server sends none never builds it).
let tree: Int32Array | undefined;
function huffmanTree(): Int32Array {
  const codes = huffmanCodes();
  const t = new Int32Array(2 * 512);
  let nodes = 1;
  for (let sym = 0; sym < codes.length; sym++) {
    const len = HUFFMAN_LENGTHS[sym]!;
    let n = 0;
    for (let i = len - 1; i > 0; i--) {
      const slot = 2 * n + (Math.floor(codes[sym]! / 2 ** i) & 1);
      if (t[slot] === 0) t[slot] = nodes++;
      n = t[slot]!;
    }
    t[2 * n + (codes[sym]! & 1)] = -sym - 1;
  }
  return t;
}

/** RFC 7541 §5.2: a Huffman-coded string; padding is at most 7 bits, all ones (the start of EOS); EOS itself is an error. */
export function huffmanDecode(b: Buffer, start: number, end: number): string {
  const t = (tree ??= huffmanTree());
  let out = '';
  let n = 0;
  let depth = 0; // bits read since the last symbol
  let ones = true; // those bits were all ones
  for (let i = start; i < end; i++) {
    const byte = b[i]!;
    for (let bit = 7; bit >= 0; bit--) {
      const v = (byte >> bit) & 1;
      const next = t[2 * n + v]!;
      depth++;
      ones &&= v === 1;
      if (next > 0) { n = next; continue; }
      // a leaf (the code is complete: no child is empty)
      const sym = -next - 1;
      if (sym === EOS) throw new HpackError('Huffman string holds EOS');
      out += String.fromCharCode(sym);
      n = 0;
      depth = 0;
      ones = true;
    }
  }
  if (depth > 7 || !ones) throw new HpackError('Huffman string ends in bad padding');
  return out;
}

/** RFC 7541 §5.1: an integer with an N-bit prefix at b[pos]; returns [value, next pos]. */
export function decodeInt(b: Buffer, pos: number, end: number, prefixBits: number): [number, number] {
  if (pos >= end) throw new HpackError('header block ends inside an integer');
  const max = (1 << prefixBits) - 1;
  let v = b[pos++]! & max;
  if (v < max) return [v, pos];
  let m = 0;
  for (;;) {
    if (pos >= end) throw new HpackError('header block ends inside an integer');
    const byte = b[pos++]!;
    v += (byte & 0x7f) * 2 ** m;
    m += 7;
    if ((byte & 0x80) === 0) break;
    // no header of etcd's needs more than 2^28: a longer integer is garbage, not a big number
    if (m > 28) throw new HpackError('integer too large');
  }
  return [v, pos];
}

/**
 * One connection's decoding context (RFC 7541 §2.2): the dynamic table lives as long as the connection, and every
 * header block of it must be decoded in order, a discarded stream's included.
 */
export class HpackDecoder {
  /** newest first (§2.3.3: dynamic index 62 is the newest) */
  private table: [string, string][] = [];
  private size = 0;
  private limit: number;

  /**
   * maxTableSize: what our SETTINGS_HEADER_TABLE_SIZE allows (4096 by default, RFC 9113 §6.5.2). maxListSize: the
   * most a block may decode to, counted as SETTINGS_MAX_HEADER_LIST_SIZE counts (each field's name and value octets
   * + 32): a 16 KB block of one-octet references to a 4 KB table entry would otherwise be 64 MB of headers (RFC 7541 §7.3).
   */
  constructor(private readonly maxTableSize = 4096, private readonly maxListSize = 1 << 20) {
    this.limit = maxTableSize;
  }

  /** The fields of one whole header block, in order. Names and values as latin1: one char per octet (§4.1's sizes). */
  decode(b: Buffer): [string, string][] {
    const out: [string, string][] = [];
    let pos = 0;
    const end = b.length;
    let listSize = 0;
    const field = (name: string, value: string): void => {
      listSize += name.length + value.length + 32;
      if (listSize > this.maxListSize) throw new HpackError(`a header list over ${this.maxListSize} bytes`, true);
      out.push([name, value]);
    };
    while (pos < end) {
      const first = b[pos]!;
      if (first & 0x80) { // §6.1 indexed field
        let idx: number;
        [idx, pos] = decodeInt(b, pos, end, 7);
        const f = this.at(idx);
        field(f[0], f[1]);
      } else if ((first & 0xe0) === 0x20) { // §6.3 dynamic table size update: only before the first field (§4.2)
        let size: number;
        [size, pos] = decodeInt(b, pos, end, 5);
        if (out.length > 0) throw new HpackError('dynamic table size update after a header field');
        if (size > this.maxTableSize) throw new HpackError(`dynamic table size update to ${size}, above our ${this.maxTableSize}`);
        this.limit = size;
        this.evict(0);
      } else { // §6.2 literals: with incremental indexing (01, 6-bit index), without (0000) or never indexed (0001)
        const indexing = (first & 0xc0) === 0x40;
        let idx: number;
        [idx, pos] = decodeInt(b, pos, end, indexing ? 6 : 4);
        let name: string;
        if (idx === 0) [name, pos] = this.string(b, pos, end);
        else name = this.at(idx)[0];
        let value: string;
        [value, pos] = this.string(b, pos, end);
        field(name, value);
        if (indexing) this.add(name, value);
      }
    }
    return out;
  }

  private at(idx: number): readonly [string, string] {
    if (idx === 0) throw new HpackError('index 0');
    if (idx <= STATIC.length) return STATIC[idx - 1]!;
    const f = this.table[idx - STATIC.length - 1];
    if (f === undefined) throw new HpackError(`index ${idx} beyond the dynamic table (${this.table.length} entries)`);
    return f;
  }

  /** §5.2 string literal: H bit, 7-bit prefix length, the octets */
  private string(b: Buffer, pos: number, end: number): [string, number] {
    if (pos >= end) throw new HpackError('header block ends before a string');
    const huffman = (b[pos]! & 0x80) !== 0;
    let len: number;
    [len, pos] = decodeInt(b, pos, end, 7);
    if (pos + len > end) throw new HpackError('string runs past the header block');
    const s = huffman ? huffmanDecode(b, pos, pos + len) : b.toString('latin1', pos, pos + len);
    return [s, pos + len];
  }

  /** §4.4: a new entry evicts the oldest until it fits; one larger than the table empties it and is not added */
  private add(name: string, value: string): void {
    const n = name.length + value.length + 32;
    this.evict(n);
    if (n <= this.limit) {
      this.table.unshift([name, value]);
      this.size += n;
    }
  }

  private evict(room: number): void {
    while (this.table.length > 0 && this.size + room > this.limit) {
      const [name, value] = this.table.pop()!;
      this.size -= name.length + value.length + 32;
    }
  }
}

/** A header block of literal fields without indexing and with literal names (§6.2.2), no Huffman: the peer's table stays empty. */
export function encodeHeaders(fields: readonly (readonly [string, string])[]): Buffer {
  let size = 0;
  for (const [n, v] of fields) size += 1 + intSize(Buffer.byteLength(n, 'latin1'), 7) + n.length + intSize(Buffer.byteLength(v, 'latin1'), 7) + v.length;
  const b = Buffer.allocUnsafe(size);
  let pos = 0;
  for (const [n, v] of fields) {
    b[pos++] = 0x00;
    pos = encodeInt(b, pos, n.length, 7, 0);
    pos += b.write(n, pos, 'latin1');
    pos = encodeInt(b, pos, v.length, 7, 0);
    pos += b.write(v, pos, 'latin1');
  }
  return b;
}

function intSize(v: number, prefixBits: number): number {
  const max = (1 << prefixBits) - 1;
  if (v < max) return 1;
  let n = 1;
  for (v -= max; v >= 128; v = Math.floor(v / 128)) n++;
  return n + 1;
}

/** §5.1 encoding; `flags` are the bits above the prefix */
function encodeInt(b: Buffer, pos: number, v: number, prefixBits: number, flags: number): number {
  const max = (1 << prefixBits) - 1;
  if (v < max) { b[pos++] = flags | v; return pos; }
  b[pos++] = flags | max;
  for (v -= max; v >= 128; v = Math.floor(v / 128)) b[pos++] = (v % 128) | 0x80;
  b[pos++] = v;
  return pos;
}
