// The datastore soak in CI, 2 minutes (`npm run soak` runs it for 30 minutes): a real 3-member etcd cluster under churn
// of WorkloadEndpoints, IPAM blocks and BGPPeers at 50 changes/s, with compactions every 10 s, its leader killed (at 45
// and 105 s), a follower killed and restarted (65 s) and every member killed and restarted at once (85 s: no quorum for
// a while). At every check both datastores (one scoped to a node, one reading everything) equal what etcd holds; two of
// the nodes run skeind in namespaces (a BGP mesh) whose kernels are followed throughout with `ip -ts monitor route`.
// At the end each one's kernel routes and Loc-RIB equal what the datastore says, and no route was missing from a
// kernel at any moment that the datastore did not ask for (test/helpers/soak-routes.ts judges the two timelines,
// allowing 10 s for a kernel to follow a change); a route the test deletes by hand at 30 s must be found by it. The
// schedule leaves one disruption-free interval between checks (20-40 s) for the fd check. SOAK_SECONDS lengthens it.
import t from 'tap';
import { requires } from '../helpers/env.js';
import { runSoak } from '../helpers/soak.js';

// Ports of this file: 24383-24392 (members' client/peer ports 24383/24384, 24387/24388, 24391/24392).
t.test('datastore soak: a 3-member etcd cluster losing its leader and members under churn, no route missing at any moment', async (t) => {
  if (!requires(t as unknown as Parameters<typeof requires>[0], { root: true, commands: ['etcd'] })) return;
  const r = await runSoak({
    seconds: Number(process.env.SOAK_SECONDS ?? 120), clientPort: 24383, peerPort: 24384, hosts: 2, log: (l) => t.comment(l),
    checkEveryMs: 20_000, compactEveryMs: 10_000,
    leaderKillEveryMs: 60_000, firstLeaderKillMs: 45_000,
    memberRestartEveryMs: 60_000, firstMemberRestartMs: 65_000,
    restartEveryMs: 60_000, firstRestartMs: 85_000,
    settleMs: 10_000, injectLossAtMs: 30_000,
  });
  t.ok(r.ops > 0, `${r.ops} changes made (${r.unsure} with an outcome read back after etcd failed them)`);
  t.ok(r.checks >= 4, `${r.checks} checks`);
  t.ok(r.leaderKills >= 1, `${r.leaderKills} leader kills`);
  t.ok(r.memberRestarts >= 1, `${r.memberRestarts} follower restarts`);
  t.ok(r.restarts >= 1 && r.compactions >= 5, `${r.restarts} restarts of every member, ${r.compactions} compactions`);
  t.same(r.mismatches, [], 'every check: each datastore equals etcd');
  // the two skeind hosts at the end: kernel (proto 171) and Loc-RIB equal what the datastore says
  t.equal(r.hostRoutes.length, 2, 'both hosts read');
  t.ok(r.hostRoutes.every((h) => h.kernel > 2 && h.locRib > 2), `something to compare: ${r.hostRoutes.map((h) => `${h.node} ${h.kernel}/${h.locRib}`).join(', ')}`);
  t.same(r.hostMismatches, [], 'every host\'s kernel and Loc-RIB equal the datastore');
  // throughout: the kernels' timelines against the datastore's
  const tl = r.routeTimeline;
  t.ok(tl.monitorsAlive, 'both route monitors ran to the end (no hole in the kernel timelines)');
  t.ok(tl.intents > 50 && tl.kernelChanges > 50, `timelines with something in them: ${tl.intents} intents, ${tl.kernelChanges} kernel changes over ${tl.prefixes} host prefixes`);
  // the judge sees a real loss: at 30 s the test itself deleted a route from the first host's kernel (skeind puts it
  // back at once; the gap it leaves must be found, with the kernel's own timestamps)
  const inj = r.injected;
  t.ok(inj !== undefined, `a route deleted by hand: ${inj?.prefix} on ${inj?.host}`);
  const found = r.routeGaps.filter((g) => inj !== undefined && g.host === inj.host && g.prefix === inj.prefix);
  t.ok(found.length === 1 && (found[0] as (typeof found)[number]).kind === 'removed' && (found[0] as (typeof found)[number]).from >= (inj?.t ?? Infinity) - 50,
    `the judge found that loss: ${found.map((g) => `${g.kind} ${(g.to - g.from).toFixed(2)} ms, ${(g.from - (inj?.t ?? 0)).toFixed(1)} ms after the command`).join('; ')}`);
  t.same(r.routeGaps.filter((g) => !found.includes(g)), [], 'no other route missing from a kernel at any moment the datastore did not ask for its removal');
  t.same(r.routeLingering, [], 'no route left in a kernel more than 10 s after the datastore asked for its removal');
  // Open fds do not grow with the changes: between two checks with no etcd disruption in between, not one more.
  const grew: string[] = [];
  let compared = 0;
  for (let i = 1; i < r.fds.length; i++) {
    if (r.restartsBy[i] !== r.restartsBy[i - 1]) continue;
    compared++;
    if ((r.fds[i] as number) > (r.fds[i - 1] as number)) grew.push(`check ${i + 1}: ${r.fds[i - 1]} -> ${r.fds[i]}`);
  }
  t.ok(compared >= 1, `${compared} disruption-free intervals between checks to compare fds over`);
  t.same(grew, [], `open fds stable between disruptions (${r.fds.join(' ')})`);
  t.comment(`RSS ${r.rss.map((x) => (x / 1048576).toFixed(0)).join(' ')} MiB (not asserted)`);
});
