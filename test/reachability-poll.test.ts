// What a poll of the kernel's routes costs (src/daemon/reachability.ts): each dump walks the whole table, skein's
// million routes included, so a poll dumps only the protocols that had routes at the last full read or were seen
// on the monitor since, and every sixth read dumps them all. Against a stand-in `ip` (a shell script) that answers
// from files and writes down every dump it was asked for: the count is what is checked, never a time.
import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelReachability } from '../src/daemon/reachability.js';
import type { Reachability } from '../bgp/index.js';

function fakeIp(dir: string): string {
  const bin = join(dir, 'ip');
  writeFileSync(bin, `#!/bin/sh
D='${dir}'
case "$*" in
  *monitor*) if [ -f "$D/monitor" ]; then cat "$D/monitor"; fi; exec sleep 60 ;;
  *addr*) echo '[{"addr_info":[{"local":"10.0.0.1"}]}]' ;;
  *-batch*)
    while read -r l; do
      p=\${l##* }
      echo "$1 $p" >> "$D/dumps"
      if [ -f "$D/r$1-$p" ]; then cat "$D/r$1-$p"; else echo '[]'; fi
    done ;;
esac
`);
  chmodSync(bin, 0o755);
  return bin;
}

const dumps = (dir: string): string[] => (existsSync(join(dir, 'dumps')) ? readFileSync(join(dir, 'dumps'), 'utf8').trim().split('\n').filter(Boolean) : []);

t.test('a poll dumps the protocols that have routes; every sixth read dumps them all', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-reach-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ip = fakeIp(dir);
  writeFileSync(join(dir, 'r-4-2'), '[{"dst":"10.0.0.0/24","dev":"eth0","scope":"link"}]\n');
  writeFileSync(join(dir, 'r-4-4'), '[{"dst":"198.51.100.0/24","gateway":"10.0.0.9","dev":"eth0"}]\n');
  const views: Reachability[] = [];
  const errors: Error[] = [];
  const r = new KernelReachability({ ip, monitor: false, intervalMs: 3_600_000, onChange: (v) => views.push(v), onError: (e) => errors.push(e) });
  t.teardown(() => r.stop());
  const all = r.protocols.size;
  t.ok(all > 10, `${all} protocols are read`);
  await r.start();
  t.same(errors, []);
  t.equal(dumps(dir).length, 2 * all, 'the first read dumps every protocol, both families');
  t.same(views.at(-1)?.routes, ['10.0.0.0/24', '198.51.100.0/24']);

  // a route of another present protocol's family appears: polls see it, as they dump that protocol
  writeFileSync(join(dir, 'r-6-4'), '[{"dst":"fd00:9::/64","gateway":"fd00::9","dev":"eth0"}]\n');
  for (let i = 1; i <= 5; i++) {
    const before = dumps(dir).length;
    await r.refresh();
    t.equal(dumps(dir).length - before, 4, `poll ${i}: 4 dumps (protocols 2 and 4, both families)`);
  }
  t.same(views.at(-1)?.routes, ['10.0.0.0/24', '198.51.100.0/24', 'fd00:9::/64'], 'and the change is read');

  // a route of a protocol that had none: a partial poll cannot see it, the full one (every sixth read: one full, five partial) does
  writeFileSync(join(dir, 'r-4-16'), '[{"dst":"192.0.2.0/24","gateway":"10.0.0.7","dev":"eth0"}]\n');
  let before = dumps(dir).length;
  await r.refresh();
  t.equal(dumps(dir).length - before, 2 * all, 'the seventh read is full again');
  t.ok(views.at(-1)?.routes.includes('192.0.2.0/24'), 'and finds the dhcp route');
  before = dumps(dir).length;
  await r.refresh();
  t.equal(dumps(dir).length - before, 6, 'from then on protocol 16 is dumped too');
  t.same(errors, []);
});

t.test('a protocol seen on the monitor is dumped by the next poll', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'skein-reach-'));
  t.teardown(() => rmSync(dir, { recursive: true, force: true }));
  const ip = fakeIp(dir);
  writeFileSync(join(dir, 'r-4-2'), '[{"dst":"10.0.0.0/24","dev":"eth0","scope":"link"}]\n');
  // another daemon (protocol 77, which no table names) has written a route; its line arrives on the monitor
  writeFileSync(join(dir, 'r-4-77'), '[{"dst":"203.0.113.0/24","gateway":"10.0.0.5","dev":"eth0"}]\n');
  writeFileSync(join(dir, 'monitor'), '203.0.113.0/24 via 10.0.0.5 dev eth0 proto 77\n');
  const views: Reachability[] = [];
  const r2 = new KernelReachability({ ip, intervalMs: 3_600_000, onChange: (v) => views.push(v), onError: () => undefined });
  t.teardown(() => r2.stop());
  t.notOk(r2.protocols.has(77), 'protocol 77 is not among those read at first');
  await r2.start();
  for (let i = 0; i < 100 && !views.some((v) => v.routes.includes('203.0.113.0/24')); i++) await new Promise((res) => setTimeout(res, 50));
  t.ok(views.some((v) => v.routes.includes('203.0.113.0/24')), 'the route of protocol 77 is read');
  t.ok(dumps(dir).includes('-4 77'), 'protocol 77 was dumped');
  const before = dumps(dir).length;
  await r2.refresh();
  const poll = dumps(dir).slice(before);
  t.same(poll.sort(), ['-4 2', '-4 77', '-6 2', '-6 77'], 'and stays among the protocols a poll dumps');
});
