// YAML text to plain values with a way back from a field path to its line:
// the `yaml` package keeps source ranges on its nodes, a LineCounter turns
// offsets into line/column.
import { LineCounter, parseAllDocuments, isMap, isSeq, isScalar, type Document, type Node as YNode } from 'yaml';
import type { Path } from './check.js';
import type { Issue, Locate } from './errors.js';

export interface YamlDoc {
  /** the document as plain JS (null for an empty document) */
  value: unknown;
  locate: Locate;
  /** 1-based line where the document starts */
  line: number;
}

function locator(doc: Document, lc: LineCounter): Locate {
  return (path: Path, atKey: boolean) => {
    let node: unknown = doc.contents;
    let best: unknown = node;
    for (let i = 0; i < path.length; i++) {
      const seg = path[i];
      const last = i === path.length - 1;
      if (isMap(node)) {
        const pair = node.items.find((p) => (isScalar(p.key) ? p.key.value : p.key) === seg);
        if (!pair) break;
        if (last && atKey) { best = pair.key; break; }
        node = pair.value;
        best = pair.value ?? pair.key;
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
        if (node === undefined) break;
        best = node;
      } else {
        break;
      }
    }
    const range = (best as YNode | null | undefined)?.range;
    if (!range) return undefined;
    const pos = lc.linePos(range[0]);
    return { line: pos.line, column: pos.col };
  };
}

/**
 * Parse a (multi-document) YAML text. Syntax errors come back as issues with
 * their line; a document with a syntax error yields no value.
 */
export function parseYaml(text: string, source: string): { docs: YamlDoc[]; issues: Issue[] } {
  const lc = new LineCounter();
  const all = parseAllDocuments(text, { lineCounter: lc, prettyErrors: false, uniqueKeys: true });
  const list = Array.isArray(all) ? all : [];
  const issues: Issue[] = [];
  const docs: YamlDoc[] = [];
  if (!Array.isArray(all)) {
    // An EmptyStream: nothing but comments or whitespace.
    return { docs, issues };
  }
  for (const doc of list) {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const pos = lc.linePos(e.pos[0]);
        issues.push({
          source, line: pos.line, column: pos.col, field: '(syntax)',
          reason: e.message.split('\n')[0] ?? e.message, severity: 'error',
        });
      }
      continue;
    }
    const start = doc.contents?.range[0] ?? doc.range[0];
    docs.push({ value: doc.toJS({ maxAliasCount: 100 }), locate: locator(doc, lc), line: lc.linePos(start).line });
  }
  return { docs, issues };
}

/** One document of a YAML stream: its text and where it starts in the whole text. */
export interface DocText {
  text: string;
  /** offset of its first character in the whole text */
  at: number;
}

// a line that is only a document start marker (a comment may follow): the boundary splitDocuments cuts at
export const START = /^---[ \t]*(?:#.*)?\r?$/;

/**
 * Cut a YAML stream into its documents without parsing it, at the lines that hold only a document start marker
 * (`---`): YAML forbids such a line inside any node (spec 1.2.2 §9.1.4, "c-forbidden"), so each piece parses alone to
 * what the whole stream would give for it, and a file's documents can be parsed, validated and cached one by one.
 * Streams this cannot cut with certainty (a directive `%...`, a document end marker `...`, content on a `---` line)
 * come back whole, as one piece: correct, just not incremental. Lines are not counted here (at 100k documents that
 * was most of the cut): LineOf gives a document's first line when one is needed.
 */
export function splitDocuments(text: string): DocText[] {
  return cutDocuments(text) ?? [{ text, at: 0 }];
}

/**
 * The cut of splitDocuments, or undefined where a cut is not certain. The text after the last marker line is always
 * the last piece (empty when the text ends with one): fileindex.ts drops it when groups of the file follow.
 */
export function cutDocuments(text: string): DocText[] | undefined {
  const out: DocText[] = [];
  let start = 0;
  // every line that begins with a marker character: only those need a look
  const re = /^(?:---|\.\.\.|%)/gm;
  for (let m = re.exec(text); m !== null; m = re.exec(text)) {
    const at = m.index;
    const eol = text.indexOf('\n', at);
    const row = text.slice(at, eol < 0 ? text.length : eol);
    if (!START.test(row)) return undefined;
    out.push({ text: text.slice(start, at), at: start });
    start = eol < 0 ? text.length : eol + 1;
    re.lastIndex = start;
  }
  out.push({ text: text.slice(start), at: start });
  return out;
}

/** The 1-based line of offsets in a text, counted on demand and forward from the last one asked (offsets in order are cheapest). */
export class LineOf {
  private pos = 0;
  private line = 1;
  constructor(private readonly text: string) {}

  at(offset: number): number {
    if (offset < this.pos) { this.pos = 0; this.line = 1; }
    for (let i = this.text.indexOf('\n', this.pos); i >= 0 && i < offset; i = this.text.indexOf('\n', i + 1)) this.line++;
    this.pos = offset;
    return this.line;
  }
}
