// skeinctl's commands: status, peers, routes [PREFIX], fib, bfd, reload, watch, drain, undrain (docs/contract.md,
// "The three programs"), and the dispatch of `decode`, which src/skeinctl.ts runs itself (it needs bgp/, which this
// folder does not import). Each daemon command sends one request over the control socket; `--json` prints the
// daemon's result as is, otherwise it is rendered as text. Exit codes: 0 ok, 1 the daemon reports an error (or
// answers nonsense), 2 usage, 3 the daemon is not reachable. The command line is parsed once, in args.ts.
import { callControl, ControlClientError } from '../control/client.js';
import { DEFAULT_CONTROL_SOCKET } from '../control/protocol.js';
import { VERSION } from '../version.js';
import { renderBfd, renderPeers, renderReload, renderStatus, ShapeError } from './render.js';
import { renderDrain } from './drain.js';
import type { DrainJson } from '../control/types.js';
import { checkRouteOptions, streamRoutes } from './routes.js';
import { checkFibOptions, streamFib } from './fib.js';
import { ctlWatch } from './watch.js';
import { checkPrefixArg, isCommand, parseCtlArgs, UsageError, type CtlOptions, type ParsedCtlArgs, type RouteOptions } from './args.js';

export { checkPrefixArg, ctlCommandOf, DEFAULT_TIMEOUT_MS, parseCtlArgs, UsageError } from './args.js';
export type { CtlOptions, ParsedCtlArgs, RouteOptions } from './args.js';

export { humaneDuration, humaneSince, table } from './format.js';
export { renderBfd, renderFib, renderPeers, renderReload, renderRouteBlock, renderRoutes, renderStatus, ShapeError } from './render.js';

export const EXIT = { OK: 0, DAEMON_ERROR: 1, USAGE: 2, UNREACHABLE: 3 } as const;

/** The commands that talk to the daemon (every command but `decode`). */
export const CTL_COMMANDS = ['status', 'peers', 'routes', 'fib', 'bfd', 'reload', 'watch', 'drain', 'undrain'] as const;
export type CtlCommand = (typeof CTL_COMMANDS)[number];

const DEFAULT_TIMEOUT_S = 10;

export const USAGE = `usage: skeinctl [--socket PATH] COMMAND [--json]

commands:
  status            this node and one row per BGP peer (like calicoctl node status)
  peers             details per peer: families, prefix counts, AS numbers, timers, last error
  routes [PREFIX]   the Loc-RIB: best path and alternatives, why the best won, whether it is in the kernel;
                    rows stream as the daemon makes them. PREFIX (an address or prefix): its longest match,
                    exit 1 when there is none
  fib               the routes skein wants in the kernel vs. what is there, and failures; rows stream as the
                    daemon makes them (filters: --prefix-within, --family, --state, --count, --limit/--after, --jsonl)
  bfd               BFD sessions (RFC 5880): state, negotiated timers, downs and the last down reason
  reload            re-read the configuration (as SIGHUP does)
  drain             RFC 8326 graceful shutdown: announce every route with GRACEFUL_SHUTDOWN (65535:0) and LOCAL_PREF 0
                    to iBGP so peers move traffic away; sessions stay up. --seconds N: the time peers get (default
                    bgp.shutdownDrainSeconds, else 30); --wait: return once that time is over
  undrain           announce the routes as before the drain (no session is reset)
  watch [PREFIX]    a live stream of peer state changes, best-path changes and kernel route writes, until
                    interrupted (--kinds peer,best,fib,fib-batch,fib-failure to choose; --json: JSON lines)
  decode HEX|-      decode one BGP message (no daemon needed; --as2: 2-octet AS numbers, --add-path: RFC 7911 NLRI)

options:
  --socket PATH     the daemon's control socket (default: $SKEIN_SOCKET, else ${DEFAULT_CONTROL_SOCKET})
  --json            print the result as JSON (a stable schema for scripts)
  --timeout SEC     how long to wait for the daemon (default ${DEFAULT_TIMEOUT_S})
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

fib options: --prefix-within P, --family F, --count, --limit N, --after PREFIX, --jsonl as for routes, and
  --state S         only rows in state S: in-sync, pending or failed

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

/** A command that talks to the daemon (not `decode`). */
export function isCtlCommand(name: string | undefined): name is CtlCommand {
  return name !== undefined && (CTL_COMMANDS as readonly string[]).includes(name);
}

/** `skeinctl decode`'s own usage line (it is run by src/skeinctl.ts, see runCtlCommand's `decode`). */
export const DECODE_USAGE = 'usage: skeinctl decode HEX|- [--as2] [--add-path] [--json]';

/** How many PREFIX arguments a command takes: [min, max]. */
const POSITIONALS: Readonly<Record<string, readonly [number, number]>> = { routes: [0, 1], watch: [0, 1], decode: [1, 1] };

/**
 * Runs one skeinctl command line (argv without node and the script), returning the exit status.
 * Never throws: every failure is a message on stderr and a status. `decode` is parsed here like every command and
 * then handed to `decode`, which src/skeinctl.ts passes in (it may throw UsageError for a bad argument).
 */
export async function runCtlCommand(
  argv: readonly string[], io: CtlIo = processIo(), decode?: (p: ParsedCtlArgs, io: CtlIo) => number,
): Promise<number> {
  let parsed: ParsedCtlArgs;
  const usage = (e: UsageError): number => {
    io.stderr(`skeinctl: ${e.message}\n\n${USAGE}`);
    return EXIT.USAGE;
  };
  try {
    parsed = parseCtlArgs(argv, io.env);
    if (parsed.help || parsed.command === 'help') {
      io.stdout(parsed.command === 'decode' ? `${DECODE_USAGE}\n` : USAGE);
      return EXIT.OK;
    }
    if (parsed.version) {
      io.stdout(`skeinctl ${VERSION}\n`);
      return EXIT.OK;
    }
    if (parsed.command === undefined) throw new UsageError('no command given');
    if (!isCommand(parsed.command)) throw new UsageError(`unknown command '${parsed.command}'`);
    const [min, max] = POSITIONALS[parsed.command] ?? [0, 0];
    if (parsed.command === 'decode' && (parsed.args.length < min || parsed.args.length > max)) throw new UsageError(DECODE_USAGE);
    if (parsed.args.length > max) {
      throw new UsageError(max === 0 ? `${parsed.command} takes no arguments (got "${parsed.args.join(' ')}")` : `${parsed.command} takes at most one PREFIX`);
    }
    if ((parsed.command === 'routes' || parsed.command === 'watch') && parsed.args[0] !== undefined) parsed.args[0] = checkPrefixArg(parsed.args[0], parsed.command);
    if (parsed.jsonl && parsed.json) throw new UsageError(`${parsed.command}: --json or --jsonl, not both`);
    if (parsed.command === 'routes') checkRouteOptions(parsed);
    if (parsed.command === 'fib') checkFibOptions(parsed);
    if (parsed.command === 'decode') {
      if (decode === undefined) throw new UsageError('decode is not available here');
      return decode(parsed, io);
    }
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    return usage(e);
  }
  switch (parsed.command) {
    case 'status':
      return ctlStatus(parsed, io);
    case 'peers':
      return ctlPeers(parsed, io);
    case 'routes':
      return ctlRoutes(parsed, io, parsed.args[0], parsed.routes);
    case 'fib':
      return streamFib(parsed, io, parsed.routes);
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
    default:
      return EXIT.USAGE; // not reached: every command is handled above
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
export function ctlFib(o: CtlOptions, io: CtlIo, ro: RouteOptions = {}): Promise<number> {
  return streamFib(o, io, ro);
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
