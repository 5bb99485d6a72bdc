// The file datastore's index of a resources file by groups of documents (issue #14). At 100k WorkloadEndpoints the
// file is ~45 MiB; a reload that cut, screened and hashed every document took most of a second, and one that kept the
// text between reloads cost ~50 MiB. Here the file is seen as a row of groups, each a run of whole documents of about
// `groupChars` characters, kept as its length in bytes, its line count, the SHA-1 of its bytes and what its documents
// parsed to; never its text. A new version of the file is compared group by group from the front and from the back
// (the bytes of an unchanged group hash the same at the same distance from either end): only the window between the
// last group equal from the front and the first equal from the back is decoded, cut into documents and looked at.
// An append touches the last group only, an edit in the middle only its group, a file put back as it was nothing.
//
// Why a cut at a group's end stays valid: a group ends just after a line holding only a document start marker
// (`---`), and such a line can occur inside no YAML node (spec 1.2.2 §9.1.4, "c-forbidden"), so the documents after
// it parse the same whatever precedes it (yamlsource.ts cutDocuments). A window that has to be joined to the groups
// after it must end with such a line too, or it takes in the next group; a text with a marker that cannot be cut
// with certainty (a directive, a `...` line) is one group, never reused.
import { hash } from 'node:crypto';
import { cutDocuments, LineOf, START, type DocText } from './yamlsource.js';

/** A document of a group that was looked at (not dropped unread): what it parsed to, and where it starts. */
export interface GroupEntry<E> {
  /** its first line, counted from its group's first line (0 for the first) */
  line: number;
  /** SHA-1 of its text: a document moved or re-cut with the same text reuses its value */
  hash: string;
  value: E;
}

export interface Group<E> {
  /** length of the group's text in bytes (UTF-8), separators included */
  bytes: number;
  /** SHA-1 of those bytes */
  hash: string;
  /** line ends in the group */
  lines: number;
  /** documents in the group, dropped unread ones included */
  docs: number;
  /** documents dropped unread (another node's, or of a kind the reader leaves out; see filesource.ts elsewhere) */
  skipped: number;
  entries: GroupEntry<E>[];
  /** the group ends just after a `---` line, so the text after it may be cut there (false for the file's last group) */
  sep: boolean;
  /** the whole file as one piece (it could not be cut): never reused */
  whole: boolean;
}

/** What a read of a new version looked at: observable work, for tests and logs. */
export interface GroupStats {
  /** documents in the file */
  documents: number;
  /** documents in the window: cut and screened in this read (the rest are in groups unchanged since a read) */
  cut: number;
  /** documents parsed in this read (new text; the window's other documents came from the groups they left) */
  parsed: number;
  /** documents in the file dropped unread (another node's, or of a kind the reader leaves out) */
  skipped: number;
  /** bytes in the window */
  windowBytes: number;
}

const sha1 = (b: Uint8Array | string): string => hash('sha1', b, 'base64');


export interface GroupIndexOptions<T> {
  /** about how many characters of text a group holds; default 32 KiB */
  groupChars?: number | undefined;
  /** about how many bytes of a large window are decoded and cut at a time; default 1 MiB */
  sliceBytes?: number | undefined;
  /** whether a document's text can be dropped unread */
  skip?: ((text: string) => boolean) | undefined;
  /** parse a document's text (a copy, not a slice of the file's text) */
  scan: (text: string) => T;
}

/** Whether the bytes [start, end) end with a line that is only a `---` marker (a comment allowed after it). */
function endsWithStart(buf: Uint8Array, start: number, end: number): boolean {
  if (end <= start || buf[end - 1] !== 0x0a) return false;
  const from = Math.max(start, end >= 2 ? Buffer.from(buf.buffer, buf.byteOffset, buf.length).lastIndexOf(0x0a, end - 2) + 1 : 0);
  return START.test(Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('utf8', from, end - 1));
}

/**
 * The groups of the last version read and of the version in force (commit). A read compares the new bytes with both
 * and keeps the smaller window: a file truncated and then put back is compared with the version in force.
 */
export class GroupIndex<T> {
  private last: Group<T>[] = [];
  private committed: Group<T>[] = [];
  private readonly groupChars: number;
  private readonly sliceBytes: number;

  constructor(private readonly o: GroupIndexOptions<T>) {
    this.groupChars = o.groupChars ?? 32 * 1024;
    this.sliceBytes = o.sliceBytes ?? 1024 * 1024;
  }

  /** The groups of the last read, in file order. */
  get groups(): readonly Group<T>[] {
    return this.last;
  }

  /** A hash of the last read's content (of its groups' hashes and lengths): equal hashes, equal bytes. */
  contentHash(): string {
    return sha1(this.last.map((g) => `${g.hash}:${g.bytes}`).join(','));
  }

  /** The last read is the version in force. */
  commit(): void {
    this.committed = this.last;
  }

  /** Index a new version of the file; see the class. */
  read(buf: Uint8Array): GroupStats {
    const n = buf.length;
    const a = this.window(this.last, buf);
    const b = this.committed === this.last ? a : this.window(this.committed, buf);
    const w = b.end - b.start < a.end - a.start ? b : a;
    const base = w.base;
    const start = w.start;
    let { front, back, end } = w;
    // a window joined to groups after it must end with a `---` line, or its last document runs on into them
    while (back > 0 && end > start && !endsWithStart(buf, start, end)) {
      back--;
      end += (base[base.length - 1 - back] as Group<T>).bytes;
    }
    // Values of the replaced groups' documents, by their text's hash: a re-cut document is not parsed again.
    const reuse = new Map<string, T>();
    for (let i = front; i < base.length - back; i++) for (const e of (base[i] as Group<T>).entries) reuse.set(e.hash, e.value);
    const stats: GroupStats = { documents: 0, cut: 0, parsed: 0, skipped: 0, windowBytes: end - start };
    // A large window (the first read: the whole file) is decoded and cut a slice at a time, each ending just after a
    // `---` line: the worker never holds the whole file as text and its pieces at once (at 100k endpoints that grew
    // its heap by ~100 MiB, still in skeind's RSS 10 s later).
    let made: Group<T>[] = [];
    let byteAt = start;
    let whole = false;
    for (let from = start, k = 0; from < end || k === 0; k++) {
      const to = this.sliceEnd(buf, from, end);
      let text = Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('utf8', from, to);
      const last = to === end;
      let pieces = cutDocuments(text);
      if (pieces === undefined) {
        // a marker that cannot be cut: the whole file is one piece, as yamlsource.ts splitDocuments gives it
        front = 0;
        back = 0;
        made = [];
        byteAt = 0;
        stats.cut = 0;
        stats.windowBytes = n;
        text = Buffer.from(buf.buffer, buf.byteOffset, buf.length).toString('utf8');
        pieces = [{ text, at: 0 }];
        whole = true;
        byteAt = this.cutSlice(text, pieces, buf, byteAt, { whole, sep: false, reuse, stats, made });
        break;
      }
      // The text after a slice's last `---` line begins the next slice, or the groups after the window; after a front
      // that ends the file (the old last group, unchanged), the empty window holds no document at all.
      if (!last || back > 0 || (front > 0 && !(base[front - 1] as Group<T>).sep)) pieces.pop();
      byteAt = this.cutSlice(text, pieces, buf, byteAt, { whole, sep: !last || back > 0, reuse, stats, made });
      from = to;
      if (k > 1_000_000) throw new Error('file index: slice bound');
    }
    end = whole ? n : end;
    if (byteAt !== end) throw new Error(`file index: window bytes ${byteAt - start} != ${end - start}`);
    this.last = [...base.slice(0, front), ...made, ...base.slice(base.length - back)];
    for (const x of this.last) {
      stats.documents += x.docs;
      stats.skipped += x.skipped;
    }
    return stats;
  }

  /**
   * Where the slice of the window that begins at `from` ends: just after the first `---` line at least sliceBytes on,
   * or at the window's end.
   */
  private sliceEnd(buf: Uint8Array, from: number, end: number): number {
    const b = Buffer.from(buf.buffer, buf.byteOffset, buf.length);
    for (let at = b.indexOf('\n---', from + this.sliceBytes); at >= 0 && at < end; at = b.indexOf('\n---', at + 1)) {
      const eol = b.indexOf(0x0a, at + 1);
      if (eol < 0 || eol + 1 >= end) break;
      if (START.test(b.toString('utf8', at + 1, eol))) return eol + 1;
    }
    return end;
  }

  /** A slice's documents into groups (appended to `o.made`); returns the byte offset after the slice. */
  private cutSlice(text: string, pieces: DocText[], buf: Uint8Array, byteAt: number,
    o: { whole: boolean; sep: boolean; reuse: Map<string, T>; stats: GroupStats; made: Group<T>[] }): number {
    const lines = new LineOf(text);
    let g: Group<T> | undefined;
    let gAt = 0;
    let gLine = 1;
    const close = (to: number, sep: boolean): void => {
      if (g === undefined) return;
      const bytes = Buffer.byteLength(text.slice(gAt, to));
      g.bytes = bytes;
      g.hash = sha1(buf.subarray(byteAt, byteAt + bytes));
      g.lines = lines.at(to) - gLine;
      g.sep = sep;
      byteAt += bytes;
      o.made.push(g);
      g = undefined;
    };
    o.stats.cut += pieces.length;
    for (let i = 0; i < pieces.length; i++) {
      const p = pieces[i] as DocText;
      if (g === undefined) {
        g = { bytes: 0, hash: '', lines: 0, docs: 0, skipped: 0, entries: [], sep: false, whole: o.whole };
        gAt = p.at;
        gLine = lines.at(p.at);
      }
      g.docs++;
      if (this.o.skip?.(p.text) === true) {
        g.skipped++;
      } else {
        const h = sha1(p.text);
        let value = o.reuse.get(h);
        if (value === undefined) {
          // parsed from a copy: what the parser cuts from its input would otherwise be slices of the window's text
          // and keep all of it alive (at 100k endpoints, 45 MiB held by 1,000 small documents)
          value = this.o.scan(Buffer.from(p.text, 'utf8').toString('utf8'));
          o.reuse.set(h, value);
          o.stats.parsed++;
        }
        g.entries.push({ line: lines.at(p.at) - gLine, hash: h, value });
      }
      const next = pieces[i + 1];
      if (next !== undefined && next.at - gAt >= this.groupChars) close(next.at, true);
    }
    // the slice's last group: cut at a `---` line when more follows it, else it ends the file
    close(text.length, o.sep);
    return byteAt;
  }

  /** The groups of `base` equal from the front and from the back of `buf`, and the byte window between them. */
  private window(base: Group<T>[], buf: Uint8Array): { base: Group<T>[]; front: number; back: number; start: number; end: number } {
    const n = buf.length;
    let front = 0;
    let start = 0;
    for (const g of base) {
      const to = start + g.bytes;
      // the file's old last group may end the new one too, but nothing may follow it (its last document would grow)
      if (g.whole || to > n || (!g.sep && to !== n)) break;
      if (sha1(buf.subarray(start, to)) !== g.hash) break;
      start = to;
      front++;
    }
    let back = 0;
    let end = n;
    while (back < base.length - front) {
      const g = base[base.length - 1 - back] as Group<T>;
      const from = end - g.bytes;
      if (g.whole || from < start) break;
      if (sha1(buf.subarray(from, end)) !== g.hash) break;
      end = from;
      back++;
    }
    return { base, front, back, start, end };
  }
}
