// skein-bfdd's command line (src/skein-bfdd.ts runs it).
import { parseLogLevel, type LogLevel } from '../log.js';
import { VERSION } from '../version.js';
import { DEFAULT_BFDD_SOCKET, DEFAULT_ORPHAN_TIMEOUT_MS } from './server.js';

export const USAGE = `usage: skein-bfdd [--socket PATH] [--orphan-timeout SECONDS] [--log-level LEVEL]

  --socket PATH             the unix socket skeind attaches to (default ${DEFAULT_BFDD_SOCKET}; $SKEIN_BFDD_SOCKET)
  --orphan-timeout SECONDS  how long sessions outlive a skeind that does not come back (default ${DEFAULT_ORPHAN_TIMEOUT_MS / 1000})
  --log-level LEVEL         debug | info | warn | error (default info)
  --version, --help

Test and lab use only: --single-hop-port N, --multihop-port N move the BFD ports off 3784/4784.
`;

export interface BfddArgs {
  socket: string;
  orphanTimeoutMs: number;
  level: LogLevel;
  singleHopPort?: number;
  multihopPort?: number;
}

/** Parses argv; returns the options, or an exit code with what to print. */
export function parseBfddArgs(argv: readonly string[], env: NodeJS.ProcessEnv): BfddArgs | { exit: number; out?: string; err?: string } {
  const out: BfddArgs = { socket: env.SKEIN_BFDD_SOCKET || DEFAULT_BFDD_SOCKET, orphanTimeoutMs: DEFAULT_ORPHAN_TIMEOUT_MS, level: 'info' };
  const usage = (why: string): { exit: number; err: string } => ({ exit: 2, err: `${why}\n${USAGE}` });
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--version' || a === '-V') return { exit: 0, out: `skein-bfdd ${VERSION}\n` };
    if (a === '--help' || a === '-h') return { exit: 0, out: USAGE };
    const eq = a.indexOf('=');
    const name = eq > 0 ? a.slice(0, eq) : a;
    const value = (): string | undefined => (eq > 0 ? a.slice(eq + 1) : argv[++i]);
    if (name === '--socket') {
      const v = value();
      if (!v || !v.startsWith('/')) return usage('--socket needs an absolute path');
      out.socket = v;
    } else if (name === '--orphan-timeout') {
      const v = Number(value());
      if (!Number.isFinite(v) || v < 0.05 || v > 86_400) return usage('--orphan-timeout needs seconds from 0.05 to 86400');
      out.orphanTimeoutMs = Math.round(v * 1000);
    } else if (name === '--log-level') {
      const l = parseLogLevel(value() ?? '');
      if (!l) return usage('--log-level is one of debug, info, warn, error');
      out.level = l;
    } else if (name === '--single-hop-port' || name === '--multihop-port') {
      const v = Number(value());
      if (!Number.isInteger(v) || v < 1 || v > 65535) return usage(`${name} needs a port from 1 to 65535`);
      if (name === '--single-hop-port') out.singleHopPort = v;
      else out.multihopPort = v;
    } else return usage(`unknown argument "${a}"`);
  }
  return out;
}

