// One renderer of BIRD 2 as Calico's confd configures a node (src/lab/calico-bird.ts) replaced the copies in
// bench/failover and bench/converge. The fixture holds the sha256 of what those copies rendered (and three full
// texts), recorded from them before they were folded: 225 configurations — failover fabrics of 1 to 12 hosts, every
// host; converge meshes of 1 to 12 hosts and fabrics of 2, 5 and 10 hosts with 1 to 3 reflectors, every node. The
// 10-, 11- and 12-host fabrics cross the string order of 10.10.1.9 and 10.10.1.10 (the passive rule). The renderer
// must give the same bytes for each; and BIRD, where installed, must accept what it renders (parse only, no root).
import t from 'tap';
import { createHash } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { calicoBirdConf } from '../../src/lab/calico-bird.js';
import { requires } from '../helpers/env.js';
import { calicoBirdNode } from '../../bench/failover/harness.js';
import { birdNode } from '../../bench/converge/harness.js';

const golden = JSON.parse(readFileSync(new URL('../fixtures/calico-bird-golden.json', import.meta.url), 'utf8')) as {
  sha256: Record<string, string>;
  text: Record<string, string>;
};

/** Every case of the fixture, rendered now. */
function renderAll(): Map<string, string> {
  const out = new Map<string, string>();
  for (let n = 1; n <= 12; n++) {
    const hosts = Array.from({ length: n }, (_, i) => ({ name: `host-${i}`, ip: `10.10.1.${i + 1}`, index: i }));
    for (const x of hosts) out.set(`failover n=${n} ${x.name}`, calicoBirdConf(calicoBirdNode(hosts, x)));
  }
  for (let n = 1; n <= 12; n++) {
    for (const rr of [2, 5, 10].includes(n) ? [0, 1, 2, 3] : [0]) {
      const hosts = Array.from({ length: n }, (_, i) => ({ role: 'host' as const, index: i, name: `host-${i}`, ip: `10.10.1.${i + 1}` }));
      const rrs = Array.from({ length: rr }, (_, j) => ({ role: 'rr' as const, index: j, name: `rr-${j}`, ip: `10.10.2.${j + 1}` }));
      const b = { dir: '/tmp/skein-converge-X', hosts, rrs };
      for (const x of [...hosts, ...rrs]) out.set(`converge n=${n} rr=${rr} ${x.name}`, calicoBirdConf(birdNode(x, b)));
    }
  }
  return out;
}

t.test('the renderer gives the removed copies\' bytes for every recorded configuration', async (t) => {
  const now = renderAll();
  const cases = Object.keys(golden.sha256);
  t.equal(cases.length, 225, '225 recorded configurations');
  t.same([...now.keys()].sort(), [...cases].sort(), 'the same cases are rendered');
  const differ = cases.filter((k) => createHash('sha256').update(now.get(k) ?? '').digest('hex') !== golden.sha256[k]);
  t.same(differ, [], 'no configuration differs by a byte');
  for (const [k, text] of Object.entries(golden.text)) t.equal(now.get(k), text, `${k}: the full text`);
  // must not: a reflector's clients are its hosts only, and a host is no reflector's client
  const rr = now.get('converge n=5 rr=2 rr-0') ?? '';
  t.equal(rr.match(/rr client;/g)?.length, 5, 'rr-0 has its 5 hosts as clients');
  t.notMatch(rr, /Node_10_10_2_2 [^\n]*rr client/, 'the other reflector is not a client');
  t.notMatch(now.get('converge n=5 rr=2 host-0') ?? '', /rr client/, 'a host reflects to no one');
});

t.test('BIRD accepts the rendered configurations (bird -p)', async (t) => {
  if (!requires(t, { commands: ['bird'] })) return;
  const dir = mkdtempSync(join(tmpdir(), 'skein-calico-bird-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const now = renderAll();
  for (const k of ['failover n=4 host-1', 'failover n=12 host-9', 'converge n=5 rr=2 rr-1', 'converge n=10 rr=3 host-0', 'converge n=1 rr=0 host-0']) {
    const file = join(dir, `${k.replace(/\W+/g, '_')}.conf`);
    // the log file's directory need not exist for a parse
    writeFileSync(file, now.get(k)!.replace('/tmp/skein-converge-X', dir));
    const p = spawnSync('bird', ['-p', '-c', file], { encoding: 'utf8', timeout: 10_000 });
    t.equal(p.status, 0, `${k}: bird -p accepts it ${p.stderr.trim()}`);
  }
});
