// A real systemd for tests: a minimal Debian root (scripts/debian-root.mjs: debootstrap, cached under /var/tmp),
// booted with systemd-nspawn in a network namespace the test made. The cached root is never written: the container
// runs on a tmpfs overlay (--volatile=overlay) that vanishes with it. Commands run inside through nsenter into the container's init (no machined registration:
// --register=no --keep-unit, so nothing on the host needs systemd or D-Bus).
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync } from 'node:fs';
import { until } from './netns.js';
import type { RunResult } from './run.js';

export interface BootOptions {
  root: string;
  /** path of a network namespace, e.g. /run/netns/NAME */
  netns: string;
  /** host directory -> container path, read-only */
  bindRo?: Record<string, string>;
  /** the container's console output goes here */
  consoleLog: string;
}

export class Container {
  readonly #nspawn: ChildProcess;
  readonly #init: number;
  readonly consoleLog: string;

  private constructor(nspawn: ChildProcess, init: number, consoleLog: string) {
    this.#nspawn = nspawn;
    this.#init = init;
    this.consoleLog = consoleLog;
  }

  /** Boots the root and resolves once systemd inside reports the system running (or degraded). */
  static async boot(o: BootOptions): Promise<Container> {
    const fd = openSync(o.consoleLog, 'w');
    // nspawn keeps CAP_NET_ADMIN in the container's bounding set only with --private-network; the container has a
    // network namespace of its own here too, so it gets it back (skeind's unit asks for it).
    const args = ['--quiet', '--boot', '--register=no', '--keep-unit', `--network-namespace-path=${o.netns}`, '--capability=CAP_NET_ADMIN', '--volatile=overlay',
      '--console=read-only', '-D', o.root, ...Object.entries(o.bindRo ?? {}).map(([h, c]) => `--bind-ro=${h}:${c}`)];
    const nspawn = spawn('systemd-nspawn', args, { stdio: ['ignore', fd, fd] });
    closeSync(fd);
    let exited: string | undefined;
    nspawn.once('exit', (c, s) => {
      let tail = '';
      try {
        tail = readFileSync(o.consoleLog, 'utf8').slice(-2000);
      } catch {
        /* the test's directory may already be gone at teardown */
      }
      exited = `systemd-nspawn exited (${c ?? s}): ${tail}`;
    });
    // nspawn's child is the container's PID 1 (systemd).
    const init = await until(() => {
      if (exited) throw new Error(exited);
      const kids = readFileSync(`/proc/${nspawn.pid}/task/${nspawn.pid}/children`, 'utf8').trim().split(/\s+/).filter(Boolean).map(Number);
      for (const k of kids) if (readFileSync(`/proc/${k}/comm`, 'utf8').trim() === 'systemd') return k;
      return undefined;
    }, 'the container\'s systemd', 30_000, 100);
    const c = new Container(nspawn, init!, o.consoleLog);
    await until(async () => {
      if (exited) throw new Error(exited);
      const r = await c.exec('systemctl', ['is-system-running'], { timeoutMs: 10_000 });
      return ['running', 'degraded'].includes(r.out.trim());
    }, 'the container\'s boot to finish', 60_000, 250);
    return c;
  }

  /**
   * Runs a command inside the container (all its namespaces), bounded in time. The environment is a fresh one, not
   * this process's: the test runner's NODE_OPTIONS (its TypeScript loader) would break the packaged node inside.
   */
  exec(cmd: string, args: readonly string[], o: { input?: string; timeoutMs?: number } = {}): Promise<RunResult> {
    const env = { PATH: '/usr/sbin:/usr/bin:/sbin:/bin', LANG: 'C.UTF-8', SYSTEMD_PAGER: '', SYSTEMD_COLORS: '0' };
    return new Promise((resolve) => {
      // env -i inside as well: tap's process-info hook adds its NODE_OPTIONS to every child's environment.
      const clean = ['env', '-i', ...Object.entries(env).map(([k, v]) => `${k}=${v}`)];
      const child = spawn('nsenter', ['-t', String(this.#init), '-a', '--', ...clean, cmd, ...args], { stdio: ['pipe', 'pipe', 'pipe'], env });
      let out = '';
      let err = '';
      const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 60_000);
      child.stdout.on('data', (d: Buffer) => (out += d.toString()));
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        resolve({ code, signal, out, err });
      });
      // A command that exits without reading its input closes the pipe first: EPIPE here is that, not a failure
      // (unhandled, it killed the whole test process: 'test unfinished').
      child.stdin.on('error', () => undefined);
      child.stdin.end(o.input ?? '');
    });
  }

  /** Writes a file inside the container. */
  async write(path: string, text: string, mode = '0644'): Promise<void> {
    const r = await this.exec('sh', ['-c', 'umask 022; cat > "$1" && chmod "$2" "$1"', 'sh', path, mode], { input: text, timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`writing ${path} in the container: ${r.err}`);
  }

  /** Powers the container off (SIGTERM to nspawn makes systemd shut down), SIGKILL after a bound. */
  async stop(): Promise<void> {
    const p = this.#nspawn;
    if (p.exitCode !== null || p.signalCode !== null) return;
    const done = new Promise<void>((r) => p.once('exit', () => r()));
    p.kill('SIGTERM');
    const timer = setTimeout(() => p.kill('SIGKILL'), 20_000);
    await done;
    clearTimeout(timer);
  }
}
