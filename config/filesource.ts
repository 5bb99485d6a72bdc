// A resources file: multi-document YAML as `calicoctl apply -f` takes it
// (apiVersion projectcalico.org/v3, kind, metadata, spec; `kind: List` with
// items), plus BlockAffinity and IPAMBlock documents for standalone IPAM.
import { isObj, type Path } from './check.js';
import { issuesFrom, type Issue } from './errors.js';
import { Model } from './model.js';
import { KINDS, NAMESPACED, resourceId, validateResource, type Kind, type Resource } from './resources.js';
import { parseYaml } from './yamlsource.js';

export interface FileLoad {
  model: Model;
  issues: Issue[];
  /** a YAML syntax error: the text as a whole is not usable */
  syntaxError: boolean;
}

/** The resources of a YAML text, validated, without building a Model (what the parse worker sends back). */
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
 * blocks (the same share the etcd datastore reads for a node, keys.ts keyConcernsNode).
 */
export function concernsNode(r: Resource, node: string): boolean {
  switch (r.kind) {
    case 'WorkloadEndpoint': return r.spec.node === node;
    case 'BlockAffinity': return r.spec.node === node;
    case 'IPAMBlock': return false;
    default: return true;
  }
}

/** Parse and validate every document of a YAML text; see loadResourcesText. */
export function scanResourcesText(text: string, source: string, keep?: (r: Resource) => boolean): FileScan {
  const { docs, issues } = parseYaml(text, source);
  if (issues.length > 0) return { resources: [], issues, fallbacks: [], syntaxError: true, total: 0 };
  const out: Issue[] = [];
  const resources: Resource[] = [];
  const fallbacks: { kind: Kind; id: string }[] = [];
  // where each id was first defined, located only when it is defined again (locating every document would be most
  // of the cost on a large file)
  const seen = new Map<string, () => number>();
  let total = 0;
  const one = (raw: unknown, locate: (p: Path, k: boolean) => { line: number; column: number } | undefined, prefix: Path, docLine: number): void => {
    if (raw === null || raw === undefined) return;
    const v = validateResource(raw);
    const extra: { kind?: string; name?: string } = {};
    if (v.kind !== undefined) extra.kind = v.kind;
    if (v.name !== undefined) extra.name = v.name;
    out.push(...issuesFrom(v.checker, source, locate, prefix, extra));
    if (v.resource !== undefined) {
      const id = `${v.resource.kind}/${resourceId(v.resource)}`;
      const lineOf = (): number => locate([...prefix], false)?.line ?? docLine;
      const first = seen.get(id);
      if (first !== undefined) {
        out.push({ source, line: lineOf(), column: 1, field: 'metadata.name', reason: `${id} is defined again (first at line ${first()}); the later one wins`, severity: 'warning', ...extra });
      } else {
        total++;
        seen.set(id, lineOf);
      }
      if (keep === undefined || keep(v.resource)) resources.push(v.resource);
    } else if (isObj(raw) && KINDS.includes(raw.kind as Kind) && isObj(raw.metadata) && typeof raw.metadata.name === 'string') {
      const kind = raw.kind as Kind;
      if (kind !== 'BlockAffinity' && kind !== 'IPAMBlock') {
        const ns = raw.metadata.namespace;
        fallbacks.push({ kind, id: NAMESPACED.has(kind) ? `${typeof ns === 'string' ? ns : ''}/${raw.metadata.name}` : raw.metadata.name });
      }
    }
  };
  for (const d of docs) {
    const v = d.value;
    if (isObj(v) && v.kind === 'List') {
      if (!Array.isArray(v.items)) {
        out.push({ source, line: d.line, column: 1, field: 'items', reason: 'a List needs an items list', severity: 'error' });
        continue;
      }
      v.items.forEach((item, i) => one(item, d.locate, ['items', i], d.line));
    } else {
      one(v, d.locate, [], d.line);
    }
  }
  return { resources, issues: out, fallbacks, syntaxError: false, total };
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
 * `keep`: which valid resources to hold (concernsNode for one node); all by default.
 */
export function loadResourcesText(text: string, source: string, previous?: Model, keep?: (r: Resource) => boolean): FileLoad & { total: number } {
  const scan = scanResourcesText(text, source, keep);
  if (scan.syntaxError) return { model: previous?.clone() ?? new Model(), issues: scan.issues, syntaxError: true, total: 0 };
  return { model: modelOfScan(scan, previous), issues: scan.issues, syntaxError: false, total: scan.total };
}
