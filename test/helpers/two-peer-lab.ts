// The namespace shape several skeind tests share: skeind's host in the middle, joined by two veths to two peer
// namespaces (10.0.1.0/24: host .1, peer A .2; 10.0.2.0/24: host .1, peer B .2), a temp directory, and the list of
// child processes to kill; everything is removed at teardown, also after a failure.
import type { Test } from 'tap';
import type { ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Lab } from './netns.js';

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
