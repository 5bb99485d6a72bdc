// The namespace shape several skeind tests share: skeind's host in the middle, joined by two veths to two peer
// namespaces (10.0.1.0/24: host .1, peer A .2; 10.0.2.0/24: host .1, peer B .2), a temp directory, and the list of
// child processes to kill; everything is removed at teardown, also after a failure.
import type { Test } from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab, nsSpawn } from './netns.js';
import { runCommand } from './run.js';

const root = join(import.meta.dirname, '..', '..');

export interface TwoPeerLab {
  lab: Lab;
  dir: string;
  /** killed (SIGKILL) at teardown if still running */
  procs: ChildProcess[];
  /** skeind's log lines, for failure messages */
  lines: string[];
  /** skeind's namespace and the two peers' */
  host: string;
  a: string;
  b: string;
  /** the host's ends of the veths towards A and B, and the peers' ends */
  ifA: string;
  ifB: string;
  peerIfA: string;
  peerIfB: string;
}

/** `tag`: a short name unique to the test file, prefixed to its namespaces and temp directory. */
export function twoPeerLab(t: Test, tag: string): TwoPeerLab {
  const lab = new Lab();
  const dir = mkdtempSync(join(tmpdir(), `skein-${tag}-`));
  const procs: ChildProcess[] = [];
  t.teardown(() => {
    for (const p of procs) if (p.exitCode === null && p.signalCode === null) p.kill('SIGKILL');
    lab.destroy();
    rmSync(dir, { recursive: true, force: true });
  });
  const host = lab.ns(`${tag}sk`);
  const a = lab.ns(`${tag}a`);
  const b = lab.ns(`${tag}b`);
  const [ha, pa] = lab.link(host, a);
  const [hb, pb] = lab.link(host, b);
  lab.addr(host, ha, '10.0.1.1/24');
  lab.addr(a, pa, '10.0.1.2/24');
  lab.addr(host, hb, '10.0.2.1/24');
  lab.addr(b, pb, '10.0.2.2/24');
  return { lab, dir, procs, lines: [], host, a, b, ifA: ha, ifB: hb, peerIfA: pa, peerIfB: pb };
}

export interface LabSkeind {
  /** the file datastore skeind reads (rewrite it to change the resources) */
  resFile: string;
  /** its control socket */
  sock: string;
  /** skeinctl against it; throws with the exit code and stderr on failure */
  ctl(...args: string[]): Promise<string>;
}

/**
 * Starts the built skeind in the host namespace: a file datastore holding `resources`, the control socket in the
 * lab's directory, metrics on `metrics`, and `config` (further skein.yaml lines); its output goes to `lines`.
 */
export function startSkeind(l: TwoPeerLab, o: { node: string; resources: string; metrics: string; config: string[] }): LabSkeind {
  const resFile = join(l.dir, 'resources.yaml');
  writeFileSync(resFile, o.resources);
  const sock = join(l.dir, 'ctl.sock');
  const cfg = join(l.dir, 'skeind.yaml');
  writeFileSync(cfg, [`nodeName: ${o.node}`, `datastore: { type: file, path: ${resFile} }`, `control: { socket: ${sock} }`, `metrics: { listen: "${o.metrics}" }`, ...o.config, ''].join('\n'));
  const daemon = nsSpawn(l.host, 'node', [join(root, 'dist/src/skeind.js'), '--config', cfg]);
  l.procs.push(daemon);
  daemon.stdout!.on('data', (d: Buffer) => l.lines.push(...d.toString().split('\n').filter(Boolean)));
  daemon.stderr!.on('data', (d: Buffer) => l.lines.push(`stderr: ${d.toString()}`));
  const ctl = async (...args: string[]): Promise<string> => {
    const r = await runCommand('node', [join(root, 'dist/src/skeinctl.js'), '--socket', sock, ...args], { timeoutMs: 15_000 });
    if (r.code !== 0) throw new Error(`skeinctl ${args.join(' ')}: exit ${r.code}: ${r.err}`);
    return r.out;
  };
  return { resFile, sock, ctl };
}
