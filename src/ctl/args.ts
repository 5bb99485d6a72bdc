// skeinctl's one argument parser, for every command (the daemon's and `decode`, which src/skeinctl.ts runs itself).
// Options may stand anywhere on the line, as `--name value` or `--name=value`; `--` ends the options. A table says
// which command takes which option, so an option given to the wrong command is a usage error that names the
// commands it belongs to, instead of being ignored. Combinations within one command are checked where the command
// lives (routes.ts, fib.ts).
import { isIP } from 'node:net';
import { DEFAULT_CONTROL_SOCKET } from '../control/protocol.js';

export const DEFAULT_TIMEOUT_MS = 10_000;

/** Commands that talk to the daemon, and `decode`, which needs none. */
export const COMMANDS = ['status', 'peers', 'routes', 'fib', 'bfd', 'reload', 'watch', 'drain', 'undrain', 'decode'] as const;
export type Command = (typeof COMMANDS)[number];

export class UsageError extends Error {
  override name = 'UsageError';
}

/** `routes` and `fib` filters as given on the command line (fib takes within, family, state, count, limit, after) */
export interface RouteOptions {
  longer?: boolean;
  within?: string;
  peer?: string;
  received?: boolean;
  refused?: boolean;
  advertised?: boolean;
  community?: string;
  family?: string;
  /** fib: in-sync, pending or failed */
  state?: string;
  count?: boolean;
  limit?: number;
  after?: string;
}

export interface CtlOptions {
  socket: string;
  json: boolean;
  timeoutMs: number;
  /** one JSON object per line (routes, fib, watch) */
  jsonl?: boolean;
}

export interface ParsedCtlArgs extends CtlOptions {
  command: string | undefined;
  args: string[];
  help: boolean;
  version: boolean;
  routes: RouteOptions;
  /** watch: the event types wanted */
  kinds?: string;
  /** drain: --seconds N, --wait */
  drain: { seconds?: number; wait?: boolean };
  /** decode: --as2 (no 4-octet AS numbers), --add-path (RFC 7911 path ids) */
  decode: { as2?: boolean; addPath?: boolean };
}

type Setter = (p: ParsedCtlArgs, v: string) => void;
interface OptionSpec {
  /** takes a value */
  value: boolean;
  /** the commands that take it; undefined: every command */
  commands?: readonly Command[];
  set: Setter;
}

const LISTS: readonly Command[] = ['routes', 'fib'];
const route = (key: keyof RouteOptions, commands: readonly Command[] = ['routes']): OptionSpec => ({
  value: false, commands, set: (p) => { (p.routes as Record<string, unknown>)[key] = true; },
});
const routeValue = (key: keyof RouteOptions, commands: readonly Command[] = ['routes']): OptionSpec => ({
  value: true, commands, set: (p, v) => { (p.routes as Record<string, unknown>)[key] = v; },
});

const OPTIONS: Readonly<Record<string, OptionSpec>> = {
  '--socket': { value: true, set: (p, v) => { p.socket = v; } },
  '--timeout': {
    value: true,
    set: (p, v) => {
      const sec = Number(v);
      if (!Number.isFinite(sec) || sec <= 0) throw new UsageError(`--timeout: expected a number of seconds, got "${v}"`);
      p.timeoutMs = Math.round(sec * 1000);
    },
  },
  '--json': { value: false, set: (p) => { p.json = true; } },
  '--help': { value: false, set: (p) => { p.help = true; } },
  '-h': { value: false, set: (p) => { p.help = true; } },
  '--version': { value: false, set: (p) => { p.version = true; } },
  '-V': { value: false, set: (p) => { p.version = true; } },
  '--jsonl': { value: false, commands: ['routes', 'fib', 'watch'], set: (p) => { p.jsonl = true; } },
  '--kinds': { value: true, commands: ['watch'], set: (p, v) => { p.kinds = v; } },
  '--seconds': {
    value: true,
    commands: ['drain'],
    set: (p, v) => {
      if (!/^\d{1,4}$/.test(v) || Number(v) > 3600) throw new UsageError(`--seconds: expected a whole number from 0 to 3600, got "${v}"`);
      p.drain.seconds = Number(v);
    },
  },
  '--wait': { value: false, commands: ['drain'], set: (p) => { p.drain.wait = true; } },
  '--as2': { value: false, commands: ['decode'], set: (p) => { p.decode.as2 = true; } },
  '--add-path': { value: false, commands: ['decode'], set: (p) => { p.decode.addPath = true; } },
  '--longer': route('longer'),
  '--received': route('received'),
  '--refused': route('refused'),
  '--advertised': route('advertised'),
  '--count': route('count', LISTS),
  '--prefix-within': routeValue('within', LISTS),
  '--peer': routeValue('peer'),
  '--community': routeValue('community'),
  '--family': routeValue('family', LISTS),
  '--state': routeValue('state', ['fib']),
  '--after': routeValue('after', LISTS),
  '--limit': {
    value: true,
    commands: LISTS,
    set: (p, v) => {
      if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw new UsageError(`--limit: expected a positive number, got "${v}"`);
      p.routes.limit = Number(v);
    },
  },
};

export function isCommand(name: string | undefined): name is Command {
  return name !== undefined && (COMMANDS as readonly string[]).includes(name);
}

/** The command word of a skeinctl command line (the first word that is not an option or its value). */
export function ctlCommandOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') return argv[i + 1];
    if (OPTIONS[a]?.value === true) i++;
    else if (!a.startsWith('-') || a === '-') return a;
  }
  return undefined;
}

/**
 * Parses a skeinctl command line: options anywhere, each checked against the command it is given to. Throws
 * UsageError (an unknown option, a missing or bad value, an option of another command).
 */
export function parseCtlArgs(argv: readonly string[], env: Readonly<Record<string, string | undefined>> = {}): ParsedCtlArgs {
  const p: ParsedCtlArgs = {
    command: undefined, args: [], socket: env.SKEIN_SOCKET || DEFAULT_CONTROL_SOCKET, json: false, jsonl: false,
    timeoutMs: DEFAULT_TIMEOUT_MS, help: false, version: false, routes: {}, drain: {}, decode: {},
  };
  const given: string[] = [];
  const positional: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--') {
      positional.push(...argv.slice(i + 1));
      break;
    }
    if (!a.startsWith('-') || a === '-') {
      positional.push(a);
      continue;
    }
    const eq = a.startsWith('--') ? a.indexOf('=') : -1;
    const name = eq > 0 ? a.slice(0, eq) : a;
    const spec = OPTIONS[name];
    if (spec === undefined) throw new UsageError(`unknown option ${name}`);
    let v = '';
    if (spec.value) {
      v = eq > 0 ? a.slice(eq + 1) : (argv[++i] ?? '');
      if (v === '') throw new UsageError(`${name} needs a value`);
    } else if (eq > 0) throw new UsageError(`${name} takes no value`);
    spec.set(p, v);
    given.push(name);
  }
  const [command, ...args] = positional;
  p.command = command;
  p.args = args;
  if (command !== undefined && isCommand(command)) {
    for (const name of given) {
      const only = OPTIONS[name]!.commands;
      if (only !== undefined && !only.includes(command)) throw new UsageError(`${command}: ${name} applies to ${only.join(' and ')}, not ${command}`);
    }
  }
  return p;
}

/** Checks a PREFIX argument: an address or a prefix of either family. Returns it trimmed. */
export function checkPrefixArg(s: string, command = 'routes'): string {
  const t = s.trim();
  const slash = t.indexOf('/');
  const addr = slash < 0 ? t : t.slice(0, slash);
  const fam = isIP(addr);
  if (fam === 0) throw new UsageError(`${command}: "${s}" is not an IP prefix (e.g. 10.65.1.0/26 or fd00:1::/122)`);
  if (slash >= 0) {
    const len = t.slice(slash + 1);
    const max = fam === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(len) || Number(len) > max) throw new UsageError(`${command}: bad prefix length in "${s}" (0..${max})`);
  }
  return t;
}
