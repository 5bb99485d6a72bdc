// Problems found in skein.yaml or in the datastore, located for the operator:
// a file with line and column, or an etcd key, plus the field and the reason.
import type { Checker, Path } from './check.js';
import { formatPath } from './check.js';

export interface Issue {
  /** the file path, or the etcd key */
  source: string;
  /** 1-based, for YAML sources */
  line?: number;
  column?: number;
  /** dotted field path inside the document or value, e.g. "spec.peerIP" */
  field: string;
  reason: string;
  severity: 'error' | 'warning';
  /** the resource concerned, when known */
  kind?: string;
  name?: string;
}

/** "file:12:5: spec.peerIP: expected an IP address ..." or "/calico/...: spec.peerIP: ..." */
export function formatIssue(i: Issue): string {
  const where = i.line === undefined ? i.source : `${i.source}:${i.line}:${i.column ?? 1}`;
  const what = i.kind !== undefined ? ` ${i.kind}${i.name !== undefined ? ` "${i.name}"` : ''}` : '';
  return `${where}:${what} ${i.field}: ${i.reason}`;
}

export type Locate = (path: Path, atKey: boolean) => { line: number; column: number } | undefined;

/** Turn a checker's field problems into located issues. */
export function issuesFrom(
  checker: Checker,
  source: string,
  locate?: Locate,
  prefix: Path = [],
  extra: Pick<Issue, 'kind' | 'name'> = {},
): Issue[] {
  return checker.problems.map((p) => {
    const full = [...prefix, ...p.path];
    const loc = locate?.(full, p.atKey ?? false);
    const issue: Issue = { source, field: formatPath(p.path), reason: p.reason, severity: p.severity };
    if (loc) { issue.line = loc.line; issue.column = loc.column; }
    if (extra.kind !== undefined) issue.kind = extra.kind;
    if (extra.name !== undefined) issue.name = extra.name;
    return issue;
  });
}

/** skein.yaml could not be used. `message` is one line naming file, line, field and reason. */
export class ConfigError extends Error {
  override name = 'ConfigError';
  readonly code = 'CONFIG_INVALID';
  constructor(readonly issues: Issue[], options?: { cause?: unknown }) {
    const errors = issues.filter((i) => i.severity === 'error');
    const first = errors[0] ?? issues[0];
    super(first === undefined ? 'invalid configuration'
      : formatIssue(first) + (errors.length > 1 ? ` (and ${errors.length - 1} more)` : ''), options);
  }
}

/** The datastore cannot be opened as configured (e.g. an unreadable TLS or password file). */
export class DatastoreError extends Error {
  override name = 'DatastoreError';
  constructor(readonly code: 'DATASTORE_CREDENTIALS', message: string, options?: { cause?: unknown }) {
    super(message, options);
  }
}
