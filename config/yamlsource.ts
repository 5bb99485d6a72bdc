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
    const start = doc.contents?.range?.[0] ?? doc.range[0];
    docs.push({ value: doc.toJS({ maxAliasCount: 100 }), locate: locator(doc, lc), line: lc.linePos(start).line });
  }
  return { docs, issues };
}
