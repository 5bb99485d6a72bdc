// Validation of plain values (parsed YAML or JSON) into typed objects. A
// Checker walks an object, collects every problem with its field path instead
// of stopping at the first, and leaves locating the field (file and line, or
// etcd key) to the caller.
import { compileSelector, type Selector } from './selector.js';
import { didYouMean } from './suggest.js';
import { ValueError, describe, parseIP } from './values.js';

export type Path = readonly (string | number)[];

export interface FieldProblem {
  path: Path;
  reason: string;
  severity: 'error' | 'warning';
  /** the problem is the key itself (an unknown key), not its value */
  atKey?: boolean;
}

/** "spec.communities[1].value" */
export function formatPath(path: Path): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else out += out === '' ? seg : `.${seg}`;
  }
  return out === '' ? '(document)' : out;
}

export type Obj = Record<string, unknown>;

export function isObj(v: unknown): v is Obj {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export class Checker {
  readonly problems: FieldProblem[] = [];

  constructor(
    /** unknown keys: 'error' rejects (skein.yaml), 'warning' reports and ignores (Calico may add fields) */
    readonly unknownKeys: 'error' | 'warning' = 'error',
  ) {}

  get ok(): boolean {
    return !this.problems.some((p) => p.severity === 'error');
  }

  error(path: Path, reason: string): void {
    this.problems.push({ path, reason, severity: 'error' });
  }

  warn(path: Path, reason: string): void {
    this.problems.push({ path, reason, severity: 'warning' });
  }

  /**
   * v must be a mapping; reports keys not in `known` (with a "did you mean").
   * Returns an empty object (after reporting) for a missing or wrong value so
   * callers can keep going and collect more problems.
   */
  object(v: unknown, path: Path, known: readonly string[], opts: { required?: boolean } = {}): Obj {
    if (v === undefined || v === null) {
      if (opts.required) this.error(path, 'is required');
      return {};
    }
    if (!isObj(v)) {
      this.error(path, `expected a mapping, got ${describe(v)}`);
      return {};
    }
    for (const k of Object.keys(v)) {
      if (!known.includes(k)) {
        this.problems.push({
          path: [...path, k],
          reason: `unknown field "${k}"${didYouMean(k, known)}${this.unknownKeys === 'warning' ? ' (ignored)' : ''}`,
          severity: this.unknownKeys,
          atKey: true,
        });
      }
    }
    return v;
  }

  /** Run a value parser on obj[key] if present (not undefined/null); report its ValueError. */
  opt<T>(obj: Obj, key: string, path: Path, parse: (v: unknown) => T): T | undefined {
    const v = obj[key];
    if (v === undefined || v === null) return undefined;
    return this.value(v, [...path, key], parse);
  }

  req<T>(obj: Obj, key: string, path: Path, parse: (v: unknown) => T): T | undefined {
    const v = obj[key];
    if (v === undefined || v === null || v === '') {
      this.error([...path, key], 'is required');
      return undefined;
    }
    return this.value(v, [...path, key], parse);
  }

  value<T>(v: unknown, path: Path, parse: (v: unknown) => T): T | undefined {
    try {
      return parse(v);
    } catch (e) {
      if (e instanceof ValueError || (e instanceof Error && e.name === 'SelectorSyntaxError')) {
        this.error(path, e.name === 'SelectorSyntaxError' ? `invalid selector: ${e.message}` : e.message);
        return undefined;
      }
      throw e;
    }
  }

  /** A list; each element parsed by `each(v, path)`; elements that fail are dropped after reporting. */
  list<T>(obj: Obj, key: string, path: Path, each: (v: unknown, path: Path) => T | undefined): T[] {
    const v = obj[key];
    if (v === undefined || v === null) return [];
    if (!Array.isArray(v)) {
      this.error([...path, key], `expected a list, got ${describe(v)}`);
      return [];
    }
    const out: T[] = [];
    v.forEach((item, i) => {
      const r = each(item, [...path, key, i]);
      if (r !== undefined) out.push(r);
    });
    return out;
  }
}

// Small value parsers to combine with Checker.opt/req.

export const str = (v: unknown): string => {
  if (typeof v !== 'string') throw new ValueError(`expected a string, got ${describe(v)}`);
  return v;
};

export const bool = (v: unknown): boolean => {
  if (typeof v !== 'boolean') throw new ValueError(`expected true or false, got ${describe(v)}`);
  return v;
};

export function int(min: number, max: number): (v: unknown) => number {
  return (v) => {
    if (typeof v !== 'number' || !Number.isInteger(v)) throw new ValueError(`expected an integer ${min}-${max}, got ${describe(v)}`);
    if (v < min || v > max) throw new ValueError(`${v} is out of range ${min}-${max}`);
    return v;
  };
}

export function oneOf<T extends string>(values: readonly T[]): (v: unknown) => T {
  return (v) => {
    if (typeof v === 'string' && (values as readonly string[]).includes(v)) return v as T;
    const hint = typeof v === 'string' ? didYouMean(v, values) : '';
    throw new ValueError(`expected one of ${values.map((x) => `"${x}"`).join(', ')}, got ${describe(v)}${hint}`);
  };
}

export function stringMap(v: unknown): Record<string, string> {
  if (!isObj(v)) throw new ValueError(`expected a mapping of strings, got ${describe(v)}`);
  const out: Record<string, string> = {};
  for (const [k, x] of Object.entries(v)) {
    if (typeof x !== 'string') throw new ValueError(`value of "${k}" must be a string, got ${describe(x)}`);
    out[k] = x;
  }
  return out;
}

/** A Kubernetes-style object name: lower-case RFC 1123 subdomain (what Calico accepts for most kinds). */
export function resourceName(v: unknown): string {
  const s = str(v);
  if (s.length === 0 || s.length > 253 || !/^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$/.test(s)) {
    throw new ValueError(`"${s}" is not a valid name: lower-case letters, digits, "-" and ".", starting and ending with a letter or digit, at most 253 characters`);
  }
  return s;
}

/** A selector expression, parsed (config/selector.ts). */
export const selector = (v: unknown): Selector => compileSelector(str(v));
/** An address, canonical. */
export const ip = (v: unknown): string => parseIP(v).address;

/** Sets an optional field only when it has a value (exactOptionalPropertyTypes: no `key: undefined`). */
export function set<T extends object, K extends keyof T>(o: T, k: K, v: T[K] | undefined): void {
  if (v !== undefined) o[k] = v;
}
