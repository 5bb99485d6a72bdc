// Is this SIGTERM a restart or a stop? A signal cannot say, but systemd's job queue can: `systemctl restart skein`
// queues a job of type "restart" for the unit, which stays in the queue (state "running") while the unit's stop
// phase runs, and `systemctl stop` queues one of type "stop" (systemd's job types, org.freedesktop.systemd1(5),
// ListJobs). skeind asks with `systemctl list-jobs` when its SIGTERM arrives, and only when the answer matters: with
// bgp.shutdownDrainSeconds set, a stop drains (RFC 8326) and ends the sessions for good, while a restart must stay
// what it always was, hitless under graceful restart (RFC 4724).
//
// The unit is found in /proc/self/cgroup (".../skein.service"); a process not in a service's cgroup (run by hand,
// in a test) is not under systemd: "unknown". Any failure (no systemctl, no answer within the timeout) is "unknown"
// too, and the caller then does what the configuration says for a stop.
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';

export type StopKind = 'restart' | 'stop' | 'unknown';

/** The service unit this process runs in, from its cgroup (v2 "0::/system.slice/skein.service"), or undefined. */
export function ownUnit(cgroup?: string): string | undefined {
  let text = cgroup;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/cgroup', 'utf8');
    } catch {
      return undefined;
    }
  }
  for (const line of text.split('\n')) {
    const path = line.slice(line.lastIndexOf(':') + 1);
    const m = /\/([^/]+\.service)$/.exec(path);
    if (m) return m[1];
  }
  return undefined;
}

/**
 * `systemctl list-jobs --no-legend` lines: "JOB UNIT TYPE STATE". The job of `unit`, by its type: restart (also
 * try-restart and reload-or-restart, which systemd turns into restart jobs) or stop.
 */
export function jobKind(listJobs: string, unit: string): StopKind {
  for (const line of listJobs.split('\n')) {
    const f = line.trim().split(/\s+/);
    if (f.length < 4 || f[1] !== unit) continue;
    const type = f[2]!;
    if (type === 'restart' || type === 'try-restart' || type === 'reload-or-restart') return 'restart';
    if (type === 'stop') return 'stop';
  }
  return 'unknown';
}

/** What systemd is doing to this process's unit right now; 'unknown' outside systemd or on any failure. */
export function stopKind(o: { unit?: string | undefined; systemctl?: string; timeoutMs?: number } = {}): Promise<StopKind> {
  const unit = 'unit' in o ? o.unit : ownUnit();
  if (unit === undefined) return Promise.resolve('unknown');
  return new Promise((resolve) => {
    execFile(o.systemctl ?? 'systemctl', ['list-jobs', '--no-legend', '--no-pager', '--full'], { timeout: o.timeoutMs ?? 3000 }, (err, stdout) => {
      resolve(err ? 'unknown' : jobKind(String(stdout), unit));
    });
  });
}
