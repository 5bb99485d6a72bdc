// skeind's end of the control socket (src/control/): the socket's group from skein.yaml, and which of the
// Daemon's parts answers which method (the methods and their shapes: docs/contract.md, "The control socket
// protocol" and "The `--json` shapes").
import type { DaemonConfig } from '../../config/index.js';
import type { Programmer } from '../../fib/index.js';
import { ControlServer } from '../control/index.js';
import { resolveGroup } from '../control/group.js';
import type { Logger } from '../log.js';
import { bindAs } from './bind.js';
import { StartConfigError } from './capabilities.js';
import type { ControlStream } from '../control/stream.js';
import type { BfdJson, PeerJson, ReloadJson, RouteJson, StatusJson } from '../control/types.js';
import type { Drain } from './drain.js';
import { fibStream, parseFibQuery } from './fib-query.js';
import type { RouteTable } from './routes.js';
import type { RuntimeStats } from './runtime.js';
import type { WatchHub } from './watch.js';

/** What answers the control methods: the Daemon (src/daemon.ts). */
export interface ControlMethods {
  readonly cfg: DaemonConfig;
  readonly fib: Programmer | undefined;
  readonly routes: RouteTable;
  readonly bfd: { json(): BfdJson };
  readonly drain: Pick<Drain, 'control' | 'undrain'>;
  readonly watch: Pick<WatchHub, 'stream'>;
  status(): StatusJson;
  peers(): PeerJson[];
  routesStream(params: Record<string, unknown>): ControlStream | { routes: RouteJson[] };
  reload(): Promise<ReloadJson>;
}

/** The control socket's group id (control.group), resolved before anything is opened; undefined: none set. */
export async function controlGroup(cfg: DaemonConfig): Promise<number | undefined> {
  if (cfg.control.group === undefined) return undefined;
  try {
    return await resolveGroup(cfg.control.group);
  } catch (e) {
    throw new StartConfigError(`${cfg.file}: control.group: ${(e as Error).message} (create it, e.g. \`groupadd --system ${String(cfg.control.group)}\`, or remove control.group)`, { cause: e });
  }
}

/** Registers the control methods on a new ControlServer and listens (a bind failure names control.socket). */
export async function listenControl(d: ControlMethods, o: { gid: number | undefined; log: Logger; runtime: () => RuntimeStats | undefined }): Promise<ControlServer> {
  const control = new ControlServer({ path: d.cfg.control.socket, log: o.log, ...(o.gid !== undefined ? { group: o.gid } : {}) });
  control
    .handle('status', () => d.status())
    .handle('peers', () => ({ peers: d.peers() }))
    .handle('routes', (p) => d.routesStream(p))
    .handle('fib', (p) => fibStream(parseFibQuery(p), { fib: d.fib, routes: d.routes, cfg: d.cfg.fib }))
    .handle('bfd', () => d.bfd.json())
    .handle('reload', () => d.reload())
    .handle('drain', (p) => d.drain.control(p))
    .handle('undrain', () => d.drain.undrain())
    .handle('watch', (p) => d.watch.stream(p))
    .handle('runtime', (p) => o.runtime()?.json({ reset: p.reset === true, control: control.stats }));
  await bindAs('control.socket', d.cfg.control.socket, () => control.listen());
  return control;
}
