// A resources file: multi-document YAML as `calicoctl apply -f` takes it
// (apiVersion projectcalico.org/v3, kind, metadata, spec; `kind: List` with
// items), plus BlockAffinity and IPAMBlock documents for standalone IPAM.
import { isObj, type Path } from './check.js';
import { issuesFrom, type Issue } from './errors.js';
import { Model } from './model.js';
import { KINDS, NAMESPACED, resourceId, validateResource, type Kind } from './resources.js';
import { parseYaml } from './yamlsource.js';

export interface FileLoad {
  model: Model;
  issues: Issue[];
  /** a YAML syntax error: the text as a whole is not usable */
  syntaxError: boolean;
}

/**
 * Validate every resource in a YAML text. An invalid document is reported and
 * skipped; if `previous` holds a resource with the same kind and name, that
 * last good version stays in force (a typo in one edit never withdraws a peer).
 */
export function loadResourcesText(text: string, source: string, previous?: Model): FileLoad {
  const { docs, issues } = parseYaml(text, source);
  const model = new Model();
  if (issues.length > 0) return { model: previous?.clone() ?? model, issues, syntaxError: true };
  const out: Issue[] = [];
  const seen = new Map<string, number>();
  const one = (raw: unknown, locate: (p: Path, k: boolean) => { line: number; column: number } | undefined, prefix: Path, docLine: number): void => {
    if (raw === null || raw === undefined) return;
    const v = validateResource(raw);
    const extra: { kind?: string; name?: string } = {};
    if (v.kind !== undefined) extra.kind = v.kind;
    if (v.name !== undefined) extra.name = v.name;
    out.push(...issuesFrom(v.checker, source, locate, prefix, extra));
    if (v.resource !== undefined) {
      const id = `${v.resource.kind}/${resourceId(v.resource)}`;
      const line = locate([...prefix], false)?.line ?? docLine;
      const first = seen.get(id);
      if (first !== undefined) {
        out.push({ source, line, column: 1, field: 'metadata.name', reason: `${id} is defined again (first at line ${first}); the later one wins`, severity: 'warning', ...extra });
      }
      seen.set(id, line);
      model.set(v.resource);
    } else if (previous !== undefined && isObj(raw) && KINDS.includes(raw.kind as Kind) && isObj(raw.metadata) && typeof raw.metadata.name === 'string') {
      const kind = raw.kind as Kind;
      if (kind !== 'BlockAffinity' && kind !== 'IPAMBlock') {
        const ns = raw.metadata.namespace;
        const id = NAMESPACED.has(kind) ? `${typeof ns === 'string' ? ns : ''}/${raw.metadata.name}` : raw.metadata.name;
        const old = previous.get(kind, id);
        if (old !== undefined) model.set(old);
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
  return { model, issues: out, syntaxError: false };
}
