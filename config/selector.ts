// Calico's label selector language: a parser that reports where and what it
// expected, a printer whose output parses back to the same tree, and an
// evaluator against a label set.
//
// Grammar (the semantics follow libcalico-go's selector package; the code is
// our own):
//   expr      := and ( '||' and )*
//   and       := operation ( '&&' operation )*
//   operation := '!'* ( 'all()' | 'global()' | 'has(' label ')' | '(' expr ')'
//                      | label ( '==' | '!=' | 'contains' | 'starts with' | 'ends with' ) string
//                      | label ( 'in' | 'not in' ) '{' [ string ( ',' string )* [','] ] '}' )
//   label     := [a-zA-Z0-9_./-]{1,512}
//   string    := "..." | '...'      (no escapes: a value holds either quote, not both)
// An empty selector means all(). Leading '!'s collapse to one negation or none.
// Absent labels: '==', 'in', 'contains', 'starts with', 'ends with' are false;
// '!=' and 'not in' are true. global() matches every label set (it only means
// something to Calico's policy engine, where it selects non-namespaced objects).

export type SelectorNode =
  | { op: 'all' }
  | { op: 'global' }
  | { op: 'has'; label: string }
  | { op: '==' | '!=' | 'contains' | 'starts with' | 'ends with'; label: string; value: string }
  | { op: 'in' | 'not in'; label: string; values: string[] }
  | { op: 'not'; operand: SelectorNode }
  | { op: 'and' | 'or'; operands: SelectorNode[] };

export class SelectorSyntaxError extends Error {
  override name = 'SelectorSyntaxError';
  constructor(
    readonly selector: string,
    /** 0-based offset into the selector where the problem is */
    readonly position: number,
    /** what the parser expected there */
    readonly expected: string,
    /** what it found instead */
    readonly found: string,
  ) {
    super(`at position ${position}: expected ${expected}, found ${found}`);
  }
}

type TokKind =
  | 'label' | 'string' | '{' | '}' | ',' | '==' | '!=' | 'in' | 'not in' | '!'
  | 'contains' | 'starts with' | 'ends with' | 'all' | 'has' | 'global' | '(' | ')' | '&&' | '||' | 'eof';

interface Token { kind: TokKind; value: string; pos: number }

const LABEL_RE = /[a-zA-Z0-9_./-]{1,512}/y;
const MAX_LABEL = 512;

function isSpace(c: string | undefined): boolean {
  return c === ' ' || c === '\t' || c === '\n' || c === '\r';
}

function tokenize(src: string): Token[] {
  const toks: Token[] = [];
  let i = 0;
  const err = (pos: number, expected: string): never => {
    throw new SelectorSyntaxError(src, pos, expected, pos >= src.length ? 'the end of the selector' : `"${src.slice(pos, pos + 12)}"`);
  };
  const skip = (): void => { while (isSpace(src[i])) i++; };
  /** a keyword at i, not followed by another label character */
  const word = (w: string): boolean => {
    if (!src.startsWith(w, i)) return false;
    const next = src[i + w.length];
    return next === undefined || !/[a-zA-Z0-9_./-]/.test(next);
  };
  const label = (): string | undefined => {
    LABEL_RE.lastIndex = i;
    const m = LABEL_RE.exec(src);
    if (!m) return undefined;
    if (/[a-zA-Z0-9_./-]/.test(src[i + m[0].length] ?? '')) err(i + MAX_LABEL, `a label name of at most ${MAX_LABEL} characters`);
    return m[0];
  };
  for (;;) {
    skip();
    const pos = i;
    if (i >= src.length) { toks.push({ kind: 'eof', value: '', pos }); return toks; }
    const c = src[i] as string;
    const last = toks[toks.length - 1]?.kind;
    const push = (kind: TokKind, len: number, value = ''): void => { toks.push({ kind, value, pos }); i += len; };
    if (c === '(' || c === ')' || c === '{' || c === '}' || c === ',') { push(c, 1); continue; }
    if (c === '"' || c === "'") {
      const end = src.indexOf(c, i + 1);
      if (end < 0) err(src.length, `a closing ${c} for the string that starts at position ${pos}`);
      push('string', end - i + 1, src.slice(i + 1, end));
      continue;
    }
    if (c === '=') { if (src[i + 1] === '=') push('==', 2); else err(pos, '"=="'); continue; }
    if (c === '!') { if (src[i + 1] === '=') push('!=', 2); else push('!', 1); continue; }
    if (c === '&') { if (src[i + 1] === '&') push('&&', 2); else err(pos, '"&&"'); continue; }
    if (c === '|') { if (src[i + 1] === '|') push('||', 2); else err(pos, '"||"'); continue; }
    if (last === 'label') {
      // After a label only an operator may follow.
      if (word('contains')) { push('contains', 8); continue; }
      if (word('in')) { push('in', 2); continue; }
      for (const [first, kind] of [['starts', 'starts with'], ['ends', 'ends with'], ['not', 'not in']] as const) {
        if (word(first)) {
          i += first.length;
          skip();
          const second = kind.split(' ')[1] as string;
          if (!word(second)) err(i, `"${kind}"`);
          i += second.length;
          toks.push({ kind, value: '', pos });
          break;
        }
      }
      if (toks[toks.length - 1]?.pos === pos) continue;
      err(pos, 'an operator (==, !=, in, not in, contains, starts with, ends with)');
    }
    for (const fn of ['all', 'global', 'has'] as const) {
      if (src.startsWith(`${fn}(`, i)) {
        i += fn.length + 1;
        skip();
        let value = '';
        if (fn === 'has') {
          const l = label();
          if (l === undefined) err(i, 'a label name inside has( )');
          value = l as string;
          i += value.length;
          skip();
        }
        if (src[i] !== ')') err(i, `")" to close ${fn}(`);
        i++;
        toks.push({ kind: fn, value, pos });
        break;
      }
    }
    if (toks[toks.length - 1]?.pos === pos && i > pos) continue;
    const l = label();
    if (l !== undefined) { push('label', l.length, l); continue; }
    err(pos, 'a label name, has(...), all(), global(), "!" or "("');
  }
}

class Parser {
  private i = 0;
  constructor(private readonly src: string, private readonly toks: Token[]) {}

  private peek(): Token { return this.toks[this.i] as Token; }

  private fail(expected: string): never {
    const t = this.peek();
    const found = t.kind === 'eof' ? 'the end of the selector'
      : t.kind === 'string' ? `the string "${t.value}"`
      : t.kind === 'label' ? `the label "${t.value}"` : `"${t.kind === 'has' ? 'has(' : t.kind}"`;
    throw new SelectorSyntaxError(this.src, t.pos, expected, found);
  }

  parseRoot(): SelectorNode {
    if (this.peek().kind === 'eof') return { op: 'all' };
    const node = this.parseOr();
    if (this.peek().kind !== 'eof') this.fail('"&&", "||" or the end of the selector');
    return node;
  }

  private parseOr(): SelectorNode {
    const operands = [this.parseAnd()];
    while (this.peek().kind === '||') { this.i++; operands.push(this.parseAnd()); }
    return operands.length === 1 ? operands[0] as SelectorNode : { op: 'or', operands };
  }

  private parseAnd(): SelectorNode {
    const operands = [this.parseOperation()];
    while (this.peek().kind === '&&') { this.i++; operands.push(this.parseOperation()); }
    return operands.length === 1 ? operands[0] as SelectorNode : { op: 'and', operands };
  }

  private parseOperation(): SelectorNode {
    let negated = false;
    while (this.peek().kind === '!') { negated = !negated; this.i++; }
    const t = this.peek();
    let node: SelectorNode;
    switch (t.kind) {
      case 'all': this.i++; node = { op: 'all' }; break;
      case 'global': this.i++; node = { op: 'global' }; break;
      case 'has': this.i++; node = { op: 'has', label: t.value }; break;
      case '(': {
        this.i++;
        node = this.parseOr();
        if (this.peek().kind !== ')') this.fail('")"');
        this.i++;
        break;
      }
      case 'label': {
        this.i++;
        const op = this.peek();
        this.i++;
        switch (op.kind) {
          case '==': case '!=': case 'contains': case 'starts with': case 'ends with': {
            const s = this.peek();
            if (s.kind !== 'string') this.fail(`a quoted string after "${op.kind}"`);
            this.i++;
            node = { op: op.kind, label: t.value, value: s.value };
            break;
          }
          case 'in': case 'not in': {
            if (this.peek().kind !== '{') this.fail(`"{" to start the set after "${op.kind}"`);
            this.i++;
            const values = new Set<string>();
            while (this.peek().kind === 'string') {
              values.add(this.peek().value);
              this.i++;
              if (this.peek().kind === ',') this.i++;
              else break;
            }
            if (this.peek().kind !== '}') this.fail('a quoted string, "," or "}"');
            this.i++;
            node = { op: op.kind, label: t.value, values: [...values].sort() };
            break;
          }
          default:
            this.i--;
            this.fail('an operator (==, !=, in, not in, contains, starts with, ends with)');
        }
        break;
      }
      default:
        this.fail('a label name, has(...), all(), global(), "!" or "("');
    }
    return negated ? { op: 'not', operand: node } : node;
  }
}

/** Parse a selector; throws SelectorSyntaxError with the position and what was expected. */
export function parseSelector(src: string): SelectorNode {
  return new Parser(src, tokenize(src)).parseRoot();
}

function quote(s: string): string {
  return s.includes("'") ? `"${s}"` : `'${s}'`;
}

/** Print a selector so that parseSelector(printSelector(n)) equals n. */
export function printSelector(n: SelectorNode): string {
  switch (n.op) {
    case 'all': return 'all()';
    case 'global': return 'global()';
    case 'has': return `has(${n.label})`;
    case '==': case '!=': case 'contains': case 'starts with': case 'ends with':
      return `${n.label} ${n.op} ${quote(n.value)}`;
    case 'in': case 'not in':
      return `${n.label} ${n.op} {${n.values.map(quote).join(', ')}}`;
    case 'not': {
      // A nested and/or or a nested negation needs parentheses: "!!x" would collapse to x.
      const o = n.operand;
      const inner = printSelector(o);
      return o.op === 'and' || o.op === 'or' || o.op === 'not' ? `!(${inner})` : `!${inner}`;
    }
    case 'and': case 'or':
      return n.operands
        .map((o) => (o.op === 'and' || o.op === 'or' ? `(${printSelector(o)})` : printSelector(o)))
        .join(n.op === 'and' ? ' && ' : ' || ');
  }
}

export type Labels = Readonly<Record<string, string>> | ReadonlyMap<string, string>;

function get(labels: Labels, k: string): string | undefined {
  if (labels instanceof Map) return labels.get(k);
  const rec = labels as Readonly<Record<string, string>>;
  return Object.prototype.hasOwnProperty.call(rec, k) ? rec[k] : undefined;
}

/** Does the selector match this label set? */
export function evaluateSelector(n: SelectorNode, labels: Labels): boolean {
  switch (n.op) {
    case 'all': case 'global': return true;
    case 'has': return get(labels, n.label) !== undefined;
    case '==': { const v = get(labels, n.label); return v !== undefined && v === n.value; }
    case '!=': { const v = get(labels, n.label); return v === undefined || v !== n.value; }
    case 'contains': { const v = get(labels, n.label); return v !== undefined && v.includes(n.value); }
    case 'starts with': { const v = get(labels, n.label); return v !== undefined && v.startsWith(n.value); }
    case 'ends with': { const v = get(labels, n.label); return v !== undefined && v.endsWith(n.value); }
    case 'in': { const v = get(labels, n.label); return v !== undefined && n.values.includes(v); }
    case 'not in': { const v = get(labels, n.label); return v === undefined || !n.values.includes(v); }
    case 'not': return !evaluateSelector(n.operand, labels);
    case 'and': return n.operands.every((o) => evaluateSelector(o, labels));
    case 'or': return n.operands.some((o) => evaluateSelector(o, labels));
  }
}

/** A selector as it sits in a resource: the text the operator wrote and its parsed tree. */
export interface Selector {
  readonly source: string;
  readonly ast: SelectorNode;
}

export function compileSelector(source: string): Selector {
  return { source, ast: parseSelector(source) };
}

export function matches(sel: Selector, labels: Labels): boolean {
  return evaluateSelector(sel.ast, labels);
}
