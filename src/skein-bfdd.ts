#!/usr/bin/env node
// skein-bfdd: the BFD companion (src/bfdd/server.ts). It owns skeind's BFD sessions (RFC 5880/5881/5883) so they
// keep transmitting while skeind restarts; skeind attaches over a unix socket (bgp/bfd/ipc.ts), as configured by
// skein.yaml's `bfd.companion`. systemd/skein-bfd.service runs it; skein.service Wants= and is After= it.
//
// Signals: SIGTERM/SIGINT stop with AdminDown on every session (RFC 5880 §6.8.16; peers do not take it for a
// failure, RFC 5882 §3.2), exit 0. A kill -9 sends nothing: the peers detect it in their Detection Time, as they
// would a power loss. Usage errors exit 2 with one line; a socket that cannot be opened exits 1.
import { createLogger } from './log.js';
import { parseBfddArgs } from './bfdd/args.js';
import { BfdCompanionServer } from './bfdd/server.js';
import { sdNotify } from '../bgp/index.js';
import { VERSION } from './version.js';

async function main(): Promise<number> {
  const args = parseBfddArgs(process.argv.slice(2), process.env);
  if ('exit' in args) {
    if (args.out) process.stdout.write(args.out);
    if (args.err) process.stderr.write(`skein-bfdd: ${args.err}`);
    return args.exit;
  }
  const log = createLogger({ level: args.level, fields: { component: 'skein-bfdd' } });
  const server = new BfdCompanionServer({
    socketPath: args.socket,
    log,
    orphanTimeoutMs: args.orphanTimeoutMs,
    ...(args.singleHopPort !== undefined ? { singleHopPort: args.singleHopPort } : {}),
    ...(args.multihopPort !== undefined ? { multihopPort: args.multihopPort } : {}),
  });
  try {
    await server.start();
  } catch (e) {
    process.stderr.write(`skein-bfdd: cannot start: ${(e as Error).message}\n`);
    return 1;
  }
  log.info('skein-bfdd started', { version: VERSION, pid: process.pid });
  try {
    sdNotify('READY=1\nSTATUS=listening');
  } catch {
    // not under systemd, or its socket is gone: nothing to tell
  }
  let stopping = false;
  const stop = (sig: string): void => {
    if (stopping) return;
    stopping = true;
    log.info('stopping: AdminDown to every peer', { signal: sig });
    void server.close({ graceful: true }).then(() => {
      process.exitCode = 0;
      setTimeout(() => process.exit(0), 100).unref();
    });
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  // A bug must not silently stop BFD: the peers would see it as a failure anyway, so log and exit non-zero
  // (systemd restarts the companion, skeind re-adds its sessions).
  process.on('uncaughtException', (e) => {
    log.error('internal error', { err: e });
    process.exit(1);
  });
  return -1;
}

main().then(
  (code) => {
    if (code >= 0) process.exitCode = code;
  },
  (e: unknown) => {
    process.stderr.write(`skein-bfdd: internal error: ${e instanceof Error ? e.message : String(e)}\n`);
    process.exitCode = 1;
  },
);
