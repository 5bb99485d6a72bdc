// A resources file: multi-document YAML as `calicoctl apply -f` takes it
// (apiVersion projectcalico.org/v3, kind, metadata, spec; `kind: List` with
// items), plus BlockAffinity and IPAMBlock documents for standalone IPAM.
//
// The file is cut into its documents (yamlsource.ts cutDocuments) and each is parsed and validated on its own, so
// a FileIndex re-reading a changed file cuts and parses only the groups of documents whose bytes changed
// (fileindex.ts; issue #14: at 100k WorkloadEndpoints a whole-file parse took most of a minute) and hands back only
// what changed.
import { isObj, type Path } from './check.js';
import type { DatastoreScope } from './dsbase.js';
import { issuesFrom, type Issue } from './errors.js';
import { wepNodeOfName } from './keys.js';
import { Model } from './model.js';
import { KINDS, NAMESPACED, resourceId, validateResource, type Kind, type Resource } from './resources.js';
import { GroupIndex, type GroupStats } from './fileindex.js';
import { parseYaml } from './yamlsource.js';

export interface FileLoad {
  model: Model;
  issues: Issue[];
  /** a YAML syntax error: the text as a whole is not usable */
  syntaxError: boolean;
}

/** The resources of a YAML text, validated, without building a Model. */
export interface FileScan {
  /** valid resources that `keep` accepted, in file order (a later duplicate after the earlier) */
  resources: Resource[];
  issues: Issue[];
  /** invalid documents whose kind and id are known: their last good version (if any) stays in force */
  fallbacks: { kind: Kind; id: string }[];
  syntaxError: boolean;
  /** valid resources in the file, kept or not (what the shrink rule compares) */
  total: number;
}

/**
 * Which resources a node needs from a file: all but other nodes' WorkloadEndpoints and block affinities, and IPAM
 * blocks (the same share the etcd datastore reads for a node, keys.ts keyConcernsNode); with `scope.workloadEndpoints`
 * false, no WorkloadEndpoint at all.
 */
export function concernsNode(r: Resource, node: string, scope: DatastoreScope = {}): boolean {
  switch (r.kind) {
    case 'WorkloadEndpoint': return scope.workloadEndpoints !== false && r.spec.node === node;
    case 'BlockAffinity': return r.spec.node === node;
    case 'IPAMBlock': return false;
    default: return true;
  }
}

/** Which valid resources a reader keeps (FileIndex's `keep`), or undefined for all: concernsNode, or for every node all but what `scope` leaves out. */
export function keepFor(node: string | undefined, scope: DatastoreScope = {}): ((r: Resource) => boolean) | undefined {
  if (node !== undefined) return (r) => concernsNode(r, node, scope);
  if (scope.workloadEndpoints !== false) return undefined;
  return (r) => r.kind !== 'WorkloadEndpoint';
}

// The root line `kind: <kind>` of a kind whose documents a node may drop unread, and `name: <name>` as a plain or
// quoted scalar of the characters a Kubernetes name has (anything else, an alias or a tag, is left to the parser).
// The line patterns are sticky: tried at a line's start, without cutting the document into lines (this runs on every
// document of the file, 100k of them, at each read).
const KIND_LINE = /^kind:[ \t]*(WorkloadEndpoint|IPAMBlock)[ \t]*(?:#.*)?\r?$/m;
const NAME_VALUE = /name:[ \t]*(?:([A-Za-z0-9][A-Za-z0-9._-]*)|'([A-Za-z0-9._-]+)'|"([A-Za-z0-9._-]+)")[ \t]*(?:#.*)?\r?$/my;
const METADATA_LINE = /metadata:[ \t]*(?:#.*)?\r?$/my;

/**
 * Whether the line at `i` begins with a plain mapping key (a letter, then letters, digits, `_`, `.`, `/` or `-`, then
 * a colon and a blank or the line's end), or, with `entry`, a block sequence entry (`-` and a blank or the end).
 * A loop over character codes, not a pattern: it runs for nearly every line of the file.
 */
function keyAt(doc: string, i: number, entry: boolean): boolean {
  const blank = (c: number): boolean => c === 32 || c === 9 || c === 13 || c === 10 || Number.isNaN(c);
  let c = doc.charCodeAt(i);
  if (entry && c === 45 /* - */) return blank(doc.charCodeAt(i + 1));
  const letter = (x: number): boolean => (x >= 65 && x <= 90) || (x >= 97 && x <= 122);
  if (!letter(c)) return false;
  for (c = doc.charCodeAt(++i); ; c = doc.charCodeAt(++i)) {
    if (c === 58 /* : */) return blank(doc.charCodeAt(i + 1));
    if (!(letter(c) || (c >= 48 && c <= 57) || c === 95 || c === 46 || c === 47 || c === 45)) return false;
  }
}

const at = (re: RegExp, s: string, i: number): RegExpExecArray | null => {
  re.lastIndex = i;
  return re.exec(s);
};

/**
 * Whether one document's text is, for node `node`, another node's WorkloadEndpoint or an IPAM block, decided from its
 * text before it is parsed, as the etcd datastore decides from the key (keys.ts keyConcernsNode: the endpoint's node
 * is the first segment of its Calico name, wepNodeOfName). At 100k endpoints, parsing the 99% a node drops was nearly
 * all of a file's read. Only a document in plain block form is judged: its root a mapping with plain keys, one
 * `kind:` line, and for an endpoint one `metadata:` block holding one `name:` key at its own indentation. Any doubt
 * (flow style, quoting, anchors, a name not in Calico's form) answers false and the document is parsed: a line at a
 * mapping's own indentation is one of its keys, or the document is not valid YAML (a quoted or flow scalar's
 * continuation must be indented deeper), and such a broken document of another node is dropped unread, as etcd drops
 * another node's value without decoding it.
 * With `scope.workloadEndpoints` false every WorkloadEndpoint is dropped as an IPAM block is, by its `kind:` line,
 * whatever its name (without a node only those go: a reader for every node keeps the IPAM blocks).
 */
export function elsewhere(doc: string, node: string | undefined, scope: DatastoreScope = {}): boolean {
  const k = KIND_LINE.exec(doc);
  if (k === null) return false;
  const weps = scope.workloadEndpoints !== false;
  if (node === undefined && weps) return false;
  const len = doc.length;
  let kinds = 0;
  let metas = 0;
  let inMeta = false;
  /** the metadata block's indentation, once its first key is seen */
  let indent = -1;
  let name: string | undefined;
  for (let pos = 0; pos < len;) {
    let eol = doc.indexOf('\n', pos);
    if (eol < 0) eol = len;
    const c = doc.charCodeAt(pos);
    if (c === 32 /* space */) {
      if (inMeta) {
        let n = pos + 1;
        while (doc.charCodeAt(n) === 32) n++;
        const r = doc.charCodeAt(n);
        if (r === 9 /* tab */) return false;
        if (n < eol && r !== 13 /* CR */ && r !== 35 /* # */) {
          const depth = n - pos;
          if (indent < 0) indent = depth;
          if (depth < indent) return false;
          if (depth === indent) {
            if (!keyAt(doc, n, false)) return false;
            if (doc.startsWith('name:', n)) {
              const v = at(NAME_VALUE, doc, n);
              if (name !== undefined || v === null) return false;
              name = v[1] ?? v[2] ?? v[3];
            }
          }
        }
      }
    } else if (pos < eol && c !== 35 /* a comment ends no block */ && !(c === 13 && eol === pos + 1)) {
      if (!keyAt(doc, pos, true)) return false;
      inMeta = false;
      if (doc.startsWith('kind:', pos)) kinds++;
      else if (doc.startsWith('metadata:', pos)) {
        if (++metas > 1 || at(METADATA_LINE, doc, pos) === null) return false;
        inMeta = true;
      }
    }
    pos = eol + 1;
  }
  if (kinds !== 1) return false;
  if (k[1] === 'IPAMBlock') return node !== undefined;
  if (!weps) return true;
  if (name === undefined || node === undefined) return false;
  const owner = wepNodeOfName(name);
  return owner !== undefined && owner !== node;
}

/** One resource (a document, or an item of a List) of a scanned document; lines count from the document's first. */
interface Item {
  issues: Issue[];
  /** the valid resource, its `kind/id` and the line it starts at */
  valid?: { r: Resource; key: string; line: number };
  /** invalid, with a known kind and id */
  fallback?: { kind: Kind; id: string };
}

/** One document parsed and validated: what a FileIndex caches by the document's text. */
interface DocScan {
  /** YAML syntax errors (the text as a whole is then unusable) */
  syntax: Issue[];
  /** issues of the document itself (a List without items) */
  issues: Issue[];
  items: Item[];
}

function scanDocument(text: string, source: string): DocScan {
  const { docs, issues } = parseYaml(text, source);
  const scan: DocScan = { syntax: issues, issues: [], items: [] };
  if (issues.length > 0) return scan;
  const one = (raw: unknown, locate: (p: Path, k: boolean) => { line: number; column: number } | undefined, prefix: Path, docLine: number): void => {
    if (raw === null || raw === undefined) return;
    const v = validateResource(raw);
    const extra: { kind?: string; name?: string } = {};
    if (v.kind !== undefined) extra.kind = v.kind;
    if (v.name !== undefined) extra.name = v.name;
    const item: Item = { issues: issuesFrom(v.checker, source, locate, prefix, extra) };
    if (v.resource !== undefined) {
      item.valid = { r: v.resource, key: `${v.resource.kind}/${resourceId(v.resource)}`, line: locate([...prefix], false)?.line ?? docLine };
    } else if (isObj(raw) && KINDS.includes(raw.kind as Kind) && isObj(raw.metadata) && typeof raw.metadata.name === 'string') {
      const kind = raw.kind as Kind;
      if (kind !== 'BlockAffinity' && kind !== 'IPAMBlock') {
        const ns = raw.metadata.namespace;
        item.fallback = { kind, id: NAMESPACED.has(kind) ? `${typeof ns === 'string' ? ns : ''}/${raw.metadata.name}` : raw.metadata.name };
      }
    }
    scan.items.push(item);
  };
  for (const d of docs) {
    const v = d.value;
    if (isObj(v) && v.kind === 'List') {
      if (!Array.isArray(v.items)) {
        scan.issues.push({ source, line: d.line, column: 1, field: 'items', reason: 'a List needs an items list', severity: 'error' });
        continue;
      }
      v.items.forEach((item, i) => one(item, d.locate, ['items', i], d.line));
    } else {
      one(v, d.locate, [], d.line);
    }
  }
  return scan;
}

/** An issue of a document starting at `line`, with its line counted in the whole file. */
function shifted(i: Issue, line: number): Issue {
  return i.line === undefined || line === 1 ? i : { ...i, line: i.line + line - 1 };
}

/** What a read of the whole text holds (FileIndex.read), before it is compared with what is in force. */
interface Composed {
  /** kept resources by `kind/id`, the later definition winning */
  next: Map<string, Resource>;
  /** the same, in file order, duplicates included (the FileScan form) */
  kept: Resource[];
  issues: Issue[];
  fallbacks: { kind: Kind; id: string }[];
  syntaxError: boolean;
  total: number;
  stats: ReadStats;
}

/**
 * How much of a text a read had to look at: observable work, for tests and logs (fileindex.ts GroupStats): documents
 * in the file, cut (in the window that changed), parsed (new text), skipped (another node's, in the file).
 */
export type ReadStats = GroupStats;

/** A read compared with what is in force: only the differences (or everything, the first time). */
export interface FileDiff {
  /** nothing was in force: `upserts` is everything, and `fallbacks` are for the caller to resolve */
  full: boolean;
  /** resources new or changed (or all of them, when full) */
  upserts: Resource[];
  deletes: { kind: Kind; id: string }[];
  fallbacks: { kind: Kind; id: string }[];
  issues: Issue[];
  syntaxError: boolean;
  total: number;
  stats: ReadStats;
}

/**
 * A file's documents, parsed and validated one by one and kept in groups (fileindex.ts GroupIndex: no text kept, only
 * each group's hash and what its documents parsed to), and the resources in force: read(text) cuts and parses only
 * the window that changed since the last read (or since the version in force), and gives the differences from the
 * version in force; commit() makes the last read the version in force (the caller applied it; a held or broken read
 * is simply not committed). What the file datastore's worker thread keeps between reloads.
 */
export class FileIndex {
  private readonly index: GroupIndex<DocScan>;
  /** the kept resources in force by `kind/id` (undefined: nothing committed yet) */
  private base: Map<string, Resource> | undefined;
  private pending: Map<string, Resource> | undefined;

  constructor(
    private readonly source: string,
    private readonly keep?: (r: Resource) => boolean,
    /** this node's name: other nodes' endpoints (and IPAM blocks) are dropped before they are parsed (elsewhere) */
    node?: string,
    /** about how many characters of text a group of documents holds (fileindex.ts); default 32 KiB */
    groupChars?: number,
    /** about how many bytes of a large change are decoded at a time (fileindex.ts); default 1 MiB */
    sliceBytes?: number,
    /** what the reader leaves out: documents of it are dropped before they are parsed too (elsewhere) */
    scope: DatastoreScope = {},
  ) {
    this.index = new GroupIndex<DocScan>({
      groupChars,
      sliceBytes,
      skip: node !== undefined || scope.workloadEndpoints === false ? (text) => elsewhere(text, node, scope) : undefined,
      scan: (text) => scanDocument(text, this.source),
    });
  }

  /** A hash of the last read's bytes (equal hashes, equal files), without hashing them again. */
  contentHash(): string {
    return this.index.contentHash();
  }

  /** Parse what changed and compose the whole; see the class. */
  compose(input: string | Uint8Array): Composed {
    const next = new Map<string, Resource>();
    const kept: Resource[] = [];
    const issues: Issue[] = [];
    const syntax: Issue[] = [];
    const fallbacks: { kind: Kind; id: string }[] = [];
    const stats = this.index.read(typeof input === 'string' ? Buffer.from(input, 'utf8') : input);
    // where each id was first defined (for the "defined again" warning): its line in the file
    const seen = new Map<string, number>();
    let total = 0;
    // the first line of the group in hand, counted from the groups' line ends: no text is needed for it
    let groupLine = 1;
    for (const g of this.index.groups) {
      total += g.skipped;
      for (const e of g.entries) {
        const scan = e.value;
        const line0 = groupLine + e.line;
        if (scan.syntax.length > 0) {
          for (const i of scan.syntax) syntax.push(shifted(i, line0));
          continue;
        }
        for (const i of scan.issues) issues.push(shifted(i, line0));
        for (const item of scan.items) {
          for (const i of item.issues) issues.push(shifted(i, line0));
          if (item.fallback !== undefined) fallbacks.push(item.fallback);
          const v = item.valid;
          if (v === undefined) continue;
          const first = seen.get(v.key);
          if (first !== undefined) {
            const extra = { kind: v.r.kind, name: v.r.metadata.name };
            issues.push({ source: this.source, line: v.line + line0 - 1, column: 1, field: 'metadata.name', reason: `${v.key} is defined again (first at line ${first}); the later one wins`, severity: 'warning', ...extra });
          } else {
            total++;
            seen.set(v.key, v.line + line0 - 1);
          }
          if (this.keep === undefined || this.keep(v.r)) {
            next.set(v.key, v.r);
            kept.push(v.r);
          }
        }
      }
      groupLine += g.lines;
    }
    if (syntax.length > 0) return { next: new Map(), kept: [], issues: syntax, fallbacks: [], syntaxError: true, total: 0, stats };
    return { next, kept, issues, fallbacks, syntaxError: false, total, stats };
  }

  /** Read a new version of the text: the differences from the version in force (see the class). */
  read(text: string | Uint8Array): FileDiff {
    const c = this.compose(text);
    this.pending = undefined;
    const out = { issues: c.issues, syntaxError: c.syntaxError, total: c.total, stats: c.stats };
    if (c.syntaxError) return { full: this.base === undefined, upserts: [], deletes: [], fallbacks: [], ...out };
    const base = this.base;
    this.pending = c.next;
    if (base === undefined) return { full: true, upserts: [...c.next.values()], deletes: [], fallbacks: c.fallbacks, ...out };
    // an invalid document keeps its last good version in force
    for (const f of c.fallbacks) {
      const key = `${f.kind}/${f.id}`;
      const old = base.get(key);
      if (old !== undefined && !c.next.has(key)) c.next.set(key, old);
    }
    const upserts: Resource[] = [];
    const deletes: { kind: Kind; id: string }[] = [];
    // unchanged documents come from the cache: their resources are the very objects in force
    for (const [key, r] of c.next) if (base.get(key) !== r) upserts.push(r);
    for (const [key, r] of base) if (!c.next.has(key)) deletes.push({ kind: r.kind, id: resourceId(r) });
    return { full: false, upserts, deletes, fallbacks: [], ...out };
  }

  /** The last read is now in force; `resolved`: the last good versions the caller kept for a full read's fallbacks. */
  commit(resolved: readonly Resource[] = []): void {
    const next = this.pending;
    if (next === undefined) return;
    for (const r of resolved) {
      const key = `${r.kind}/${resourceId(r)}`;
      if (!next.has(key)) next.set(key, r);
    }
    this.base = next;
    this.pending = undefined;
    this.index.commit();
  }
}

/** Parse and validate every document of a YAML text; see loadResourcesText. */
export function scanResourcesText(text: string, source: string, keep?: (r: Resource) => boolean, scope: DatastoreScope = {}): FileScan {
  const c = new FileIndex(source, keep, undefined, undefined, undefined, scope).compose(text);
  return { resources: c.kept, issues: c.issues, fallbacks: c.fallbacks, syntaxError: c.syntaxError, total: c.total };
}

/** A scan made into a Model: the kept resources, and for each invalid document its last good version from `previous`. */
export function modelOfScan(scan: Pick<FileScan, 'resources' | 'fallbacks'>, previous?: Model, into = new Model()): Model {
  for (const r of scan.resources) into.set(r);
  if (previous !== undefined) {
    for (const f of scan.fallbacks) {
      if (into.get(f.kind, f.id) !== undefined) continue;
      const old = previous.get(f.kind, f.id);
      if (old !== undefined) into.set(old);
    }
  }
  return into;
}

/**
 * Validate every resource in a YAML text. An invalid document is reported and
 * skipped; if `previous` holds a resource with the same kind and name, that
 * last good version stays in force (a typo in one edit never withdraws a peer).
 * `keep`: which valid resources to hold (concernsNode for one node); all by default. `scope`: documents of what it
 * leaves out are dropped before they are parsed (elsewhere), as the file datastore's worker drops them, so an invalid
 * one is not reported whichever thread reads the file.
 */
export function loadResourcesText(
  text: string, source: string, previous?: Model, keep?: (r: Resource) => boolean, scope: DatastoreScope = {},
): FileLoad & { total: number } {
  const scan = scanResourcesText(text, source, keep, scope);
  if (scan.syntaxError) return { model: previous?.clone() ?? new Model(), issues: scan.issues, syntaxError: true, total: 0 };
  return { model: modelOfScan(scan, previous), issues: scan.issues, syntaxError: false, total: scan.total };
}
