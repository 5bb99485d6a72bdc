// What a poll of the kernel's routes costs (src/daemon/reachability.ts): each dump walks the whole table, skein's
// million routes included, so after a first full read a poll dumps the protocols known to have routes (a dump
// found some, or the monitor saw one) and two of the others in turn. Against a stand-in `ip` (a shell script) that answers
// from files and writes down every dump it was asked for: the count is what is checked, never a time.
import t from 'tap';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { KernelReachability } from '../../src/daemon/reachability.js';
import type { Reachability } from '../../bgp/index.js';

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

t.test('a poll dumps the protocols that have routes and two others in turn', async (t) => {
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
  const poll = async (): Promise<string[]> => {
    const before = dumps(dir).length;
    await r.refresh();
    return dumps(dir).slice(before);
  };

  // a route of a known protocol in the other family: the next poll sees it
  writeFileSync(join(dir, 'r-6-4'), '[{"dst":"fd00:9::/64","gateway":"fd00::9","dev":"eth0"}]\n');
  const p1 = await poll();
  t.equal(p1.length, 8, 'a poll: 8 dumps (protocols 2 and 4, two others, both families)');
  t.ok(p1.includes('-4 2') && p1.includes('-4 4') && p1.includes('-6 4'), 'the protocols with routes among them');
  t.same(views.at(-1)?.routes, ['10.0.0.0/24', '198.51.100.0/24', 'fd00:9::/64'], 'and the change is read');

  // a route of a protocol that had none (dhcp, 16): found when its turn comes, within (all - 2) / 2 polls
  writeFileSync(join(dir, 'r-4-16'), '[{"dst":"192.0.2.0/24","gateway":"10.0.0.7","dev":"eth0"}]\n');
  let polls = 0;
  for (; polls < all && views.at(-1)?.routes.includes('192.0.2.0/24') !== true; polls++) t.equal((await poll()).length, 8, 'every poll: 8 dumps');
  t.ok(polls >= 1 && polls <= Math.ceil((all - 2) / 2), `the dhcp route was read after ${polls} polls`);
  const p2 = await poll();
  t.equal(p2.length, 10, 'from then on protocol 16 is dumped in every poll too');
  t.ok(p2.includes('-4 16'));

  // protocol 4's routes go: the next poll reads that, and protocol 4 then waits for its turn like the others
  rmSync(join(dir, 'r-4-4'));
  rmSync(join(dir, 'r-6-4'));
  await poll();
  t.same(views.at(-1)?.routes, ['10.0.0.0/24', '192.0.2.0/24'], 'the routes of protocol 4 are gone from the view');
  t.equal((await poll()).length, 8, 'and it is no longer dumped every time');
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
  t.ok(poll.includes('-4 77') && poll.includes('-6 77') && poll.length === 8, 'and stays among the protocols a poll dumps (2, 77, two others)');
});
