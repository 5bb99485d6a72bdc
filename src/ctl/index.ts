// skeinctl's daemon commands: status, peers, routes [PREFIX], fib, bfd, reload, drain, undrain (docs/contract.md, "The two programs").
// Each sends one request over the control socket; `--json` prints the daemon's result as is, otherwise it is
// rendered as text. Exit codes: 0 ok, 1 the daemon reports an error (or answers nonsense), 2 usage,
// 3 the daemon is not reachable. src/skeinctl.ts dispatches here with
//   if (isCtlCommand(ctlCommandOf(argv))) process.exitCode = await runCtlCommand(argv);
import { isIP } from 'node:net';
import { callControl, ControlClientError } from '../control/client.js';
import { DEFAULT_CONTROL_SOCKET } from '../control/protocol.js';
import { VERSION } from '../version.js';
import { renderBfd, renderFib, renderPeers, renderReload, renderStatus, ShapeError } from './render.js';
import { renderDrain } from './drain.js';
import type { DrainJson } from '../control/types.js';
import { checkRouteOptions, streamRoutes } from './routes.js';
import { ctlWatch } from './watch.js';

export { humaneDuration, humaneSince, table } from './format.js';
export { renderBfd, renderFib, renderPeers, renderReload, renderRouteBlock, renderRoutes, renderStatus, ShapeError } from './render.js';

export const EXIT = { OK: 0, DAEMON_ERROR: 1, USAGE: 2, UNREACHABLE: 3 } as const;

export const CTL_COMMANDS = ['status', 'peers', 'routes', 'fib', 'bfd', 'reload', 'watch', 'drain', 'undrain'] as const;
export type CtlCommand = (typeof CTL_COMMANDS)[number];

export const DEFAULT_TIMEOUT_MS = 10_000;

export const USAGE = `usage: skeinctl [--socket PATH] COMMAND [--json]

commands:
  status            this node and one row per BGP peer (like calicoctl node status)
  peers             details per peer: families, prefix counts, AS numbers, timers, last error
  routes [PREFIX]   the Loc-RIB: best path and alternatives, why the best won, whether it is in the kernel;
                    rows stream as the daemon makes them. PREFIX (an address or prefix): its longest match,
                    exit 1 when there is none
  fib               the routes skein wants in the kernel vs. what is there, and failures
  bfd               BFD sessions (RFC 5880): state, negotiated timers, downs and the last down reason
  reload            re-read the configuration (as SIGHUP does)
  drain             RFC 8326 graceful shutdown: announce every route with GRACEFUL_SHUTDOWN (65535:0) and LOCAL_PREF 0
                    to iBGP so peers move traffic away; sessions stay up. --seconds N: the time peers get (default
                    bgp.shutdownDrainSeconds, else 30); --wait: return once that time is over
  undrain           announce the routes as before the drain (no session is reset)
  watch [PREFIX]    a live stream of peer state changes, best-path changes and kernel route writes, until
                    interrupted (--kinds peer,best,fib,fib-batch,fib-failure to choose; --json: JSON lines)
  decode HEX|-      decode one BGP message (no daemon needed)

options:
  --socket PATH     the daemon's control socket (default: $SKEIN_SOCKET, else ${DEFAULT_CONTROL_SOCKET})
  --json            print the result as JSON (a stable schema for scripts)
  --timeout SEC     how long to wait for the daemon (default ${DEFAULT_TIMEOUT_MS / 1000})
  --version         print skeinctl's version

routes options:
  --longer          with PREFIX: every route inside it (more-specifics), not the longest match
  --prefix-within P every route inside prefix P
  --peer ADDR       routes with a path from ADDR
  --received        with --peer: that peer's Adj-RIB-In: what it sent and we accepted (with the import rule),
                    and what import rules refused (marked "refused", with the rule; up to bgp.keepRefused)
  --refused         with --peer: only the routes its import rules refused, with the rule
  --advertised      with --peer: that peer's Adj-RIB-Out (what we send it)
  --community C     routes with a path carrying community C (A:B, or A:B:C for a large community)
  --family F        ipv4 or ipv6
  --count           print only how many routes match
  --limit N         at most N routes; the answer names where the next page starts
  --after PREFIX    start after PREFIX (paging, in listing order)
  --jsonl           one JSON route per line, as they arrive

exit status: 0 ok, 1 the daemon reports an error, 2 usage, 3 the daemon is not reachable
`;

/** Where a command writes, its environment and clock; tests pass their own. */
export interface CtlIo {
  stdout(s: string): void;
  /**
   * Writes and resolves once the text is taken (a pipe's reader keeps up); rejects with code EPIPE when the reader
   * went away (`skeinctl routes | head`). Streaming commands use it; without it they use stdout().
   */
  stdoutAsync?(s: string): Promise<void>;
  stderr(s: string): void;
  env: Readonly<Record<string, string | undefined>>;
  now(): Date;
}

export function processIo(): CtlIo {
  const out = process.stdout;
  let broken: NodeJS.ErrnoException | undefined;
  // A reader that went away (`| head`) makes writes fail with EPIPE: that ends the command quietly, never with
  // an unhandled 'error' event and its stack trace.
  out.on('error', (e: NodeJS.ErrnoException) => {
    broken = e;
    out.emit('skein-broken');
  });
  return {
    stdout: (s) => {
      if (!broken) out.write(s);
    },
    stdoutAsync: (s) => {
      if (broken) return Promise.reject(broken);
      if (out.write(s)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const done = (): void => {
          out.off('drain', done);
          out.off('skein-broken', done);
          out.off('close', done);
          if (broken) reject(broken);
          else resolve();
        };
        out.on('drain', done);
        out.on('skein-broken', done);
        out.on('close', done);
      });
    },
    stderr: (s) => void process.stderr.write(s),
    env: process.env,
    now: () => new Date(),
  };
}

export interface CtlOptions {
  socket: string;
  json: boolean;
  timeoutMs: number;
  /** one JSON object per line (routes, watch) */
  jsonl?: boolean;
}

/** `routes` options as given on the command line */
export interface RouteOptions {
  longer?: boolean;
  within?: string;
  peer?: string;
  received?: boolean;
  refused?: boolean;
  advertised?: boolean;
  community?: string;
  family?: string;
  count?: boolean;
  limit?: number;
  after?: string;
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
}

const ROUTE_FLAGS: Readonly<Record<string, keyof RouteOptions>> = {
  '--longer': 'longer', '--received': 'received', '--refused': 'refused', '--advertised': 'advertised', '--count': 'count',
};
const ROUTE_VALUES: Readonly<Record<string, keyof RouteOptions>> = {
  '--prefix-within': 'within', '--peer': 'peer', '--community': 'community', '--family': 'family', '--limit': 'limit', '--after': 'after',
};

export class UsageError extends Error {
  override name = 'UsageError';
}

export function isCtlCommand(name: string | undefined): name is CtlCommand {
  return name !== undefined && (CTL_COMMANDS as readonly string[]).includes(name);
}

/** The command word of a skeinctl command line (the first word that is not an option or its value). */
export function ctlCommandOf(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--socket' || a === '--timeout' || a === '--kinds' || a === '--seconds' || ROUTE_VALUES[a] !== undefined) i++;
    else if (!a.startsWith('-') || a === '-') return a;
  }
  return undefined;
}

/** Parses options anywhere on the line; throws UsageError. */
export function parseCtlArgs(argv: readonly string[], env: CtlIo['env'] = {}): ParsedCtlArgs {
  let socket = env.SKEIN_SOCKET || DEFAULT_CONTROL_SOCKET;
  let json = false;
  let help = false;
  let version = false;
  let jsonl = false;
  let kinds: string | undefined;
  const drain: ParsedCtlArgs['drain'] = {};
  const routes: Record<string, unknown> = {};
  let timeoutMs = DEFAULT_TIMEOUT_MS;
  const positional: string[] = [];
  const value = (i: number, name: string): string => {
    const v = argv[i];
    if (v === undefined || v === '') throw new UsageError(`${name} needs a value`);
    return v;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (name === '--socket') {
      socket = inline ?? value(++i, '--socket');
      if (socket === '') throw new UsageError('--socket needs a value');
    } else if (name === '--timeout') {
      const s = inline ?? value(++i, '--timeout');
      const sec = Number(s);
      if (!Number.isFinite(sec) || sec <= 0) throw new UsageError(`--timeout: expected a number of seconds, got "${s}"`);
      timeoutMs = Math.round(sec * 1000);
    } else if (name === '--seconds') {
      const v = inline ?? value(++i, '--seconds');
      if (!/^\d{1,4}$/.test(v) || Number(v) > 3600) throw new UsageError(`--seconds: expected a whole number from 0 to 3600, got "${v}"`);
      drain.seconds = Number(v);
    } else if (a === '--wait') drain.wait = true;
    else if (name === '--kinds') {
      kinds = inline ?? value(++i, '--kinds');
    } else if (ROUTE_VALUES[name] !== undefined) {
      const key = ROUTE_VALUES[name]!;
      const v = inline ?? value(++i, name);
      if (key === 'limit') {
        if (!/^\d{1,9}$/.test(v) || Number(v) < 1) throw new UsageError(`--limit: expected a positive number, got "${v}"`);
        routes.limit = Number(v);
      } else routes[key] = v;
    } else if (ROUTE_FLAGS[a] !== undefined) routes[ROUTE_FLAGS[a]!] = true;
    else if (a === '--json') json = true;
    else if (a === '--jsonl') jsonl = true;
    else if (a === '--version' || a === '-V') version = true;
    else if (a === '-h' || a === '--help') help = true;
    else if (a.startsWith('-') && a !== '-') throw new UsageError(`unknown option ${a}`);
    else positional.push(a);
  }
  const [command, ...args] = positional;
  return { command, args, socket, json, jsonl, timeoutMs, help, version, routes: routes as RouteOptions, drain, ...(kinds !== undefined ? { kinds } : {}) };
}

/** Checks a `routes` argument: an address or a prefix of either family. Returns it trimmed. */
export function checkPrefixArg(s: string): string {
  const t = s.trim();
  const slash = t.indexOf('/');
  const addr = slash < 0 ? t : t.slice(0, slash);
  const fam = isIP(addr);
  if (fam === 0) throw new UsageError(`routes: "${s}" is not an IP prefix (e.g. 10.65.1.0/26 or fd00:1::/122)`);
  if (slash >= 0) {
    const len = t.slice(slash + 1);
    const max = fam === 4 ? 32 : 128;
    if (!/^\d{1,3}$/.test(len) || Number(len) > max) throw new UsageError(`routes: bad prefix length in "${s}" (0..${max})`);
  }
  return t;
}

/**
 * Runs one skeinctl command line (argv without node and the script), returning the exit status.
 * Never throws: every failure is a message on stderr and a status.
 */
export async function runCtlCommand(argv: readonly string[], io: CtlIo = processIo()): Promise<number> {
  let parsed: ParsedCtlArgs;
  try {
    parsed = parseCtlArgs(argv, io.env);
    if (parsed.help || parsed.command === 'help') {
      io.stdout(USAGE);
      return EXIT.OK;
    }
    if (parsed.version) {
      io.stdout(`skeinctl ${VERSION}\n`);
      return EXIT.OK;
    }
    if (parsed.command === undefined) throw new UsageError('no command given');
    if (!isCtlCommand(parsed.command)) throw new UsageError(`unknown command "${parsed.command}"`);
    if (parsed.kinds !== undefined && parsed.command !== 'watch') throw new UsageError('--kinds applies to watch');
    if ((parsed.drain.seconds !== undefined || parsed.drain.wait === true) && parsed.command !== 'drain') throw new UsageError('--seconds and --wait apply to drain');
    if (parsed.command === 'routes' || parsed.command === 'watch') {
      if (parsed.args.length > 1) throw new UsageError(`${parsed.command} takes at most one PREFIX`);
    } else if (parsed.args.length > 0) {
      throw new UsageError(`${parsed.command} takes no arguments (got "${parsed.args.join(' ')}")`);
    }
    if ((parsed.command === 'routes' || parsed.command === 'watch') && parsed.args[0] !== undefined) parsed.args[0] = checkPrefixArg(parsed.args[0]);
    checkRouteOptions(parsed);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    io.stderr(`skeinctl: ${e.message}\n\n${USAGE}`);
    return EXIT.USAGE;
  }
  switch (parsed.command) {
    case 'status':
      return ctlStatus(parsed, io);
    case 'peers':
      return ctlPeers(parsed, io);
    case 'routes':
      return ctlRoutes(parsed, io, parsed.args[0], parsed.routes);
    case 'fib':
      return ctlFib(parsed, io);
    case 'bfd':
      return call(parsed, io, 'bfd', {}, (r) => renderBfd(r, io.now()));
    case 'reload':
      return ctlReload(parsed, io);
    case 'watch':
      return ctlWatch(parsed, io, parsed.args[0], parsed.kinds);
    case 'drain':
      return ctlDrain(parsed, io, parsed.drain);
    case 'undrain':
      return call(parsed, io, 'undrain', {}, (r) => renderDrain(r, io.now()));
  }
}

export function ctlStatus(o: CtlOptions, io: CtlIo): Promise<number> {
  return call(o, io, 'status', {}, (r) => renderStatus(r, io.now()));
}
export function ctlPeers(o: CtlOptions, io: CtlIo): Promise<number> {
  return call(o, io, 'peers', {}, (r) => renderPeers(r, io.now()));
}
export function ctlRoutes(o: CtlOptions, io: CtlIo, prefix?: string, ro: RouteOptions = {}): Promise<number> {
  return streamRoutes(o, io, prefix, ro);
}
export function ctlFib(o: CtlOptions, io: CtlIo): Promise<number> {
  return call(o, io, 'fib', {}, renderFib);
}
export function ctlReload(o: CtlOptions, io: CtlIo): Promise<number> {
  return call(o, io, 'reload', {}, renderReload);
}

/** `skeinctl drain`: with --wait, the daemon answers when the drain is over, which it says is `secondsLeft` away. */
export async function ctlDrain(o: CtlOptions, io: CtlIo, d: ParsedCtlArgs['drain'] = {}): Promise<number> {
  const params = d.seconds !== undefined ? { seconds: d.seconds } : {};
  if (d.wait !== true) return call(o, io, 'drain', params, (r) => renderDrain(r, io.now()));
  let left = 0;
  try {
    left = (await callControl(o.socket, 'drain', params, o.timeoutMs) as DrainJson | null)?.secondsLeft ?? 0;
  } catch {
    // the call below meets the same failure and reports it
  }
  return call({ ...o, timeoutMs: o.timeoutMs + left * 1000 }, io, 'drain', { ...params, wait: true }, (r) => renderDrain(r, io.now()));
}

async function call(o: CtlOptions, io: CtlIo, method: string, params: Record<string, unknown>, render: (r: unknown) => string): Promise<number> {
  const fail = (status: number, message: string, code?: string): number => {
    io.stderr(`skeinctl: ${message}\n`);
    if (o.json) io.stdout(`${JSON.stringify({ error: code === undefined ? { message } : { message, code } }, null, 2)}\n`);
    return status;
  };
  let result: unknown;
  try {
    result = await callControl(o.socket, method, params, o.timeoutMs);
  } catch (e) {
    if (e instanceof ControlClientError) {
      if (e.kind === 'unreachable') return fail(EXIT.UNREACHABLE, e.message, e.code);
      if (e.kind === 'remote') return fail(EXIT.DAEMON_ERROR, `the daemon reports: ${e.message}`, e.code);
      return fail(EXIT.DAEMON_ERROR, e.message);
    }
    return fail(EXIT.DAEMON_ERROR, (e as Error).message);
  }
  if (o.json) {
    io.stdout(`${JSON.stringify(result, null, 2)}\n`);
    return EXIT.OK;
  }
  try {
    io.stdout(render(result));
  } catch (e) {
    if (e instanceof ShapeError) return fail(EXIT.DAEMON_ERROR, e.message);
    return fail(EXIT.DAEMON_ERROR, `cannot render the daemon's answer (${(e as Error).message}); try --json`);
  }
  return EXIT.OK;
}
