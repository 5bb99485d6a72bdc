#!/usr/bin/env node
// skeind: the daemon's command line (docs/contract.md, "The three programs"). Reads skein.yaml, runs a Daemon, and maps signals:
// SIGHUP re-reads the configuration without dropping sessions; SIGTERM/SIGINT stop cleanly (routes stay in the
// kernel) and exit 0. A bad configuration exits 2 with one line on stderr naming the file, line and field, and so
// do a control.group that does not exist, a missing capability and an unreadable etcd credential file; a local
// failure at start (socket in use, no netlink) exits 1 with one line. No stack traces for user errors.
// first: V8's tiering is set before the modules below run (src/jit.ts)
import './jit.js';
import { ConfigError, DatastoreError, ENV, loadDaemonConfig, type DaemonConfig } from '../config/index.js';
import { Daemon, VERSION } from './daemon.js';
import { BindError } from './daemon/bind.js';
import { StartConfigError } from './daemon/capabilities.js';

const EXIT_OK = 0;
const EXIT_FAILURE = 1;
const EXIT_CONFIG = 2;

const USAGE = `usage: skeind [--config FILE]

  --config FILE   skein.yaml (default: $${ENV.config[0]}, else /etc/skein/skein.yaml)
  --version       print the version and exit
  --help          this text

Signals: SIGHUP re-reads the configuration; SIGTERM/SIGINT stop cleanly (routes stay in the kernel); with
bgp.shutdownDrainSeconds set they drain first (RFC 8326 graceful shutdown; a second signal cuts the wait short).
`;

function fail(code: number, line: string): number {
  process.stderr.write(`skeind: ${line}\n`);
  return code;
}

/** Parses argv; returns the config path, or an exit code when there is nothing to run. */
export function parseSkeindArgs(argv: readonly string[], env: NodeJS.ProcessEnv): { config: string } | { exit: number; out?: string; err?: string } {
  let config: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--version' || a === '-V') return { exit: EXIT_OK, out: `skeind ${VERSION}\n` };
    if (a === '--help' || a === '-h') return { exit: EXIT_OK, out: USAGE };
    if (a === '--config' || a === '-c') {
      const v = argv[++i];
      if (v === undefined || v === '') return { exit: EXIT_CONFIG, err: `--config needs a file\n${USAGE}` };
      config = v;
    } else if (a.startsWith('--config=')) config = a.slice('--config='.length);
    else return { exit: EXIT_CONFIG, err: `unknown argument "${a}"\n${USAGE}` };
  }
  return { config: config ?? env[ENV.config[0]] ?? '/etc/skein/skein.yaml' };
}

async function main(): Promise<number> {
  const args = parseSkeindArgs(process.argv.slice(2), process.env);
  if ('exit' in args) {
    if (args.out) process.stdout.write(args.out);
    if (args.err) process.stderr.write(`skeind: ${args.err}`);
    return args.exit;
  }
  let cfg: DaemonConfig;
  try {
    cfg = loadDaemonConfig(args.config, process.env);
  } catch (e) {
    // ConfigError's message is "file:line:col: field: what is wrong" for the first problem.
    if (e instanceof ConfigError) return fail(EXIT_CONFIG, e.message.split('\n')[0]!);
    throw e;
  }
  const daemon = new Daemon(cfg);
  let stopping = false;
  const stop = (sig: string, drain = true): void => {
    // a second signal during a graceful-shutdown drain (bgp.shutdownDrainSeconds) ends the wait
    if (stopping) return daemon.drain.hurry();
    stopping = true;
    void daemon.stop(drain ? `received ${sig}` : sig, { drain });
  };
  // However the daemon stopped (a signal, a fatal error), exit once it has: a handle a library leaves open must
  // not keep a stopped daemon alive.
  void daemon.finished.then(() => {
    setTimeout(() => process.exit(typeof process.exitCode === 'number' ? process.exitCode : EXIT_OK), 100).unref();
  });
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  process.on('SIGHUP', () => {
    daemon.log.info('SIGHUP: reloading');
    daemon.reload().catch((e: unknown) => daemon.log.error('reload failed', { reason: (e as Error).message }));
  });
  // Bugs must not take the routes down with them: log, stop cleanly (routes stay), exit non-zero.
  process.on('uncaughtException', (e) => {
    daemon.log.error('internal error', { err: e });
    process.exitCode = EXIT_FAILURE;
    stop('an internal error', false);
  });
  try {
    await daemon.start();
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    daemon.log.error('cannot start', { reason: msg });
    // A socket that cannot be bound names its config field, and a deployment mistake (missing capability, unknown
    // control.group) is a configuration error too: exit 2, which the unit's RestartPreventExitStatus=2 does not
    // restart in a loop. So is an etcd certificate, key or password file named in skein.yaml that cannot be read
    // (the shipped example's /etc/skein/etcd/ca.pem before the operator puts it there): restarting every 2 s
    // cannot make it appear (test/ops/packaging.test.ts starts the installed example under systemd).
    const code = e instanceof BindError || e instanceof StartConfigError || e instanceof DatastoreError ? EXIT_CONFIG : EXIT_FAILURE;
    process.exitCode = fail(code, e instanceof BindError ? msg : `cannot start: ${msg}`);
    await daemon.stop('start failed');
    return code;
  }
  return -1; // running: the exit code comes from stop()
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`skeind: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = EXIT_FAILURE;
  },
);
