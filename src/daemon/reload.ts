// SIGHUP / `skeinctl reload`: re-read skein.yaml and the datastore; apply what can change on the fly (the log
// level, secretsDir, passwords read from files, bgp.shutdownDrainSeconds) and say which changes need a restart. Sessions stay up.
import { loadDaemonConfig, type DaemonConfig, type Datastore, type Model } from '../../config/index.js';
import { ControlError } from '../control/index.js';
import type { ReloadJson } from '../control/types.js';
import { parseLogLevel, type Logger, type LogLevel } from '../log.js';
import type { Metrics } from '../metrics.js';

/** skein.yaml sections that are read once at start: a change is reported, not applied. */
const RESTART_FIELDS = ['nodeName', 'datastore', 'bgp', 'fib', 'control', 'metrics', 'stateDirectory'] as const;

export interface ReloadHost {
  readonly cfg: DaemonConfig;
  readonly env: NodeJS.ProcessEnv;
  readonly log: Logger;
  readonly metrics: Metrics;
  readonly datastore: Datastore | undefined;
  /** take the configuration that can change live */
  setConfig(cfg: DaemonConfig): void;
  /** skein.yaml's log.level changed: apply it (with Calico's logSeverityScreen, see logLevelFor) */
  setConfiguredLevel(level: LogLevel): void;
  /** the datastore was re-read: apply its log severity */
  applyLogSeverity(model: Model): void;
  /** re-read the password of every peer that has one (the speaker resets a peer only when its key changed) */
  refreshPasswords(): Promise<void>;
}

export async function reload(h: ReloadHost): Promise<ReloadJson> {
  const log = h.log;
  const changes: string[] = [];
  let next: DaemonConfig;
  try {
    next = loadDaemonConfig(h.cfg.file, h.env);
  } catch (e) {
    h.metrics.reload(false);
    log.error('reload: skein.yaml is not valid; keeping the running configuration', { reason: (e as Error).message });
    throw new ControlError(`skein.yaml: ${(e as Error).message}; the running configuration is kept`, 'bad-config');
  }
  const old = h.cfg;
  // bgp.shutdownDrainSeconds is read when it is used (src/daemon/drain.ts): it applies live, the rest of bgp does not.
  const live = (c: DaemonConfig): DaemonConfig => ({ ...c, bgp: { ...c.bgp, shutdownDrainSeconds: 0 } });
  for (const name of RESTART_FIELDS) {
    if (JSON.stringify(live(old)[name]) !== JSON.stringify(live(next)[name])) {
      changes.push(`${name} changed: needs a restart of skeind to take effect`);
      log.warn('reload: change needs a restart', { field: name });
    }
  }
  if (old.log.level !== next.log.level) {
    changes.push(`log.level: ${old.log.level} -> ${next.log.level}`);
    h.setConfiguredLevel(parseLogLevel(next.log.level) ?? 'info');
  }
  if (old.bgp.shutdownDrainSeconds !== next.bgp.shutdownDrainSeconds) {
    changes.push(`bgp.shutdownDrainSeconds: ${old.bgp.shutdownDrainSeconds} -> ${next.bgp.shutdownDrainSeconds}`);
  }
  const secretsChanged = old.secretsDir !== next.secretsDir;
  if (secretsChanged) changes.push(`secretsDir: ${old.secretsDir} -> ${next.secretsDir}`);
  // Keep what cannot change live; take the rest.
  h.setConfig({ ...old, log: next.log, secretsDir: next.secretsDir, bgp: { ...old.bgp, shutdownDrainSeconds: next.bgp.shutdownDrainSeconds } });
  const ds = h.datastore;
  if (ds) {
    try {
      await ds.reload();
    } catch (e) {
      h.metrics.reload(false);
      throw new ControlError(`datastore reload failed: ${(e as Error).message}`, 'datastore');
    }
    h.applyLogSeverity(ds.model);
  }
  // Passwords live in files: re-read them.
  await h.refreshPasswords();
  h.metrics.reload(true);
  const message = changes.length === 0 ? 'configuration re-read; no changes in skein.yaml' : 'configuration re-read';
  log.info('reloaded', { changes });
  return { reloaded: true, message, changes };
}

/** The more verbose of skein.yaml's log.level and Calico's logSeverityScreen (node.<name>, else default). */
export function logLevelFor(model: Model, nodeName: string, configured: LogLevel): { level: LogLevel; from: 'logSeverityScreen' | 'skein.yaml' } {
  const sev = model.bgpConfiguration(`node.${nodeName}`)?.spec.logSeverityScreen ?? model.bgpConfiguration('default')?.spec.logSeverityScreen;
  const calico = sev !== undefined ? parseLogLevel(sev) : undefined;
  const rank = (l: LogLevel): number => ['debug', 'info', 'warn', 'error'].indexOf(l);
  const level = calico !== undefined && rank(calico) < rank(configured) ? calico : configured;
  return { level, from: calico !== undefined ? 'logSeverityScreen' : 'skein.yaml' };
}
