// Start-up checks of what the host gives skeind: the capabilities it needs, and the control socket's group. Both
// are deployment mistakes that no restart can fix, so they surface as a StartConfigError and skeind exits 2
// (systemd's RestartPreventExitStatus=2 then stops the restart loop). Without CAP_NET_ADMIN every route write
// fails with EPERM; checking here turns "Ready, and nothing in the kernel" into one clear line at start.
import { readFileSync } from 'node:fs';
import type { DaemonConfig } from '../../config/index.js';

/** capability(7) numbers (linux/capability.h). */
export const CAP = { NET_BIND_SERVICE: 10, NET_ADMIN: 12 } as const;
export type CapName = keyof typeof CAP;

/** A start-up failure that is the deployment's fault (unit, group, capabilities): skeind exits 2. */
export class StartConfigError extends Error {
  override name = 'StartConfigError';
}

/** The effective capability set from /proc/<pid>/status text ("CapEff:\t0000003fffffffff"). */
export function effectiveCaps(statusText: string): bigint | undefined {
  const m = /^CapEff:\s*([0-9a-f]+)\s*$/im.exec(statusText);
  return m ? BigInt(`0x${m[1]}`) : undefined;
}

export function hasCap(eff: bigint, cap: CapName): boolean {
  return ((eff >> BigInt(CAP[cap])) & 1n) === 1n;
}

export interface CapNeed {
  cap: CapName;
  why: string;
}

/**
 * What this configuration needs: CAP_NET_ADMIN to write routes (fib.enabled); CAP_NET_BIND_SERVICE for a port
 * below net.ipv4.ip_unprivileged_port_start (1024 by default: BGP's 179, or a low metrics port). The BGP port can
 * still be changed later by the datastore (BGPConfiguration listenPort); a refused bind then fails the speaker's
 * start with its own EACCES message.
 */
export function neededCaps(cfg: Pick<DaemonConfig, 'fib' | 'bgp' | 'metrics'>, unprivilegedPortStart: number): CapNeed[] {
  const out: CapNeed[] = [];
  if (cfg.fib.enabled) out.push({ cap: 'NET_ADMIN', why: 'writing routes to the kernel (fib.enabled)' });
  const low: string[] = [];
  if (cfg.bgp.listen.port < unprivilegedPortStart) low.push(`BGP port ${cfg.bgp.listen.port}`);
  const m = cfg.metrics.listen;
  if (m && m.port !== 0 && m.port < unprivilegedPortStart) low.push(`metrics port ${m.port}`);
  if (low.length > 0) out.push({ cap: 'NET_BIND_SERVICE', why: `listening on ${low.join(' and ')} (below ${unprivilegedPortStart})` });
  return out;
}

/** The needs that `eff` does not meet. */
export function missingCaps(needs: readonly CapNeed[], eff: bigint): CapNeed[] {
  return needs.filter((n) => !hasCap(eff, n.cap));
}

function readOr(path: string): string | undefined {
  try {
    return readFileSync(path, 'utf8');
  } catch {
    return undefined;
  }
}

/**
 * Throws StartConfigError naming every missing capability and what it is for. Where /proc cannot be read (not
 * Linux, or hidden) nothing is checked: the operations themselves will report.
 */
export function checkCapabilities(cfg: Pick<DaemonConfig, 'fib' | 'bgp' | 'metrics'>): void {
  const status = readOr('/proc/self/status');
  const eff = status === undefined ? undefined : effectiveCaps(status);
  if (eff === undefined) return;
  const start = Number(readOr('/proc/sys/net/ipv4/ip_unprivileged_port_start')?.trim() ?? '1024');
  const missing = missingCaps(neededCaps(cfg, Number.isInteger(start) ? start : 1024), eff);
  if (missing.length === 0) return;
  const list = missing.map((n) => `CAP_${n.cap} (${n.why})`).join(', ');
  throw new StartConfigError(`missing capabilit${missing.length > 1 ? 'ies' : 'y'} ${list}: run skeind as root or grant `
    + `${missing.map((n) => `CAP_${n.cap}`).join(' and ')} (systemd: AmbientCapabilities=; Kubernetes: securityContext.capabilities.add)`);
}
