// The datastore soak, 30 s in CI (`npm run soak` runs it for 30 minutes, with leader kills in a 3-member cluster): real
// etcd, churn at 50 changes/s, compactions and etcd restarts; at every check both datastores (one scoped to a node,
// one reading everything) equal what etcd holds; two of the nodes run skeind in namespaces (a BGP mesh), and at the
// end each one's kernel routes and Loc-RIB equal what the datastore says. The schedule (a restart at 15 s, compactions every 8 s, checks at 10,
// 20 and 30 s) gives every assertion below something to bite on: two restarts would leave no restart-free interval
// for the fd check. SOAK_SECONDS lengthens it.
import t from 'tap';
import { requires } from './helpers/env.js';
import { runSoak } from './helpers/soak.js';

// Ports of this file: 24383-24384.
t.test('datastore soak: churn, compactions and etcd restarts, nothing lost', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { root: true, commands: ['etcd'] })) return;
  const r = await runSoak({ seconds: Number(process.env.SOAK_SECONDS ?? 30), clientPort: 24383, peerPort: 24384, checkEveryMs: 10_000, compactEveryMs: 8_000, restartEveryMs: 15_000, hosts: 2, log: (l) => t.comment(l) });
  t.ok(r.ops > 0, `${r.ops} changes made`);
  t.ok(r.checks >= 2, `${r.checks} checks`);
  t.ok(r.restarts >= 1 && r.compactions >= 1, `${r.restarts} etcd restarts, ${r.compactions} compactions`);
  t.same(r.mismatches, [], 'every check: each datastore equals etcd');
  // the two skeind hosts at the end: kernel (proto 171) and Loc-RIB equal what the datastore says
  t.equal(r.hostRoutes.length, 2, 'both hosts read');
  t.ok(r.hostRoutes.every((h) => h.kernel > 2 && h.locRib > 2), `something to compare: ${r.hostRoutes.map((h) => `${h.node} ${h.kernel}/${h.locRib}`).join(', ')}`);
  t.same(r.hostMismatches, [], 'every host\'s kernel and Loc-RIB equal the datastore');
  // Open fds do not grow with the changes: between two checks with no etcd restart in between, not one more. (Each
  // restart brings new gRPC connections; their count after several restarts is for the long soak to watch.)
  const grew: string[] = [];
  let compared = 0;
  for (let i = 1; i < r.fds.length; i++) {
    if (r.restartsBy[i] !== r.restartsBy[i - 1]) continue;
    compared++;
    if ((r.fds[i] as number) > (r.fds[i - 1] as number)) grew.push(`check ${i + 1}: ${r.fds[i - 1]} -> ${r.fds[i]}`);
  }
  t.ok(compared >= 1, `${compared} restart-free intervals between checks to compare fds over`);
  t.same(grew, [], `open fds stable between restarts (${r.fds.join(' ')})`);
  t.comment(`RSS ${r.rss.map((x) => (x / 1048576).toFixed(0)).join(' ')} MiB (not asserted)`);
});
