// `npm run soak`: the datastore soak (test/helpers/soak.ts) for SOAK_SECONDS (default 1800: 30 minutes) at
// SOAK_RATE changes per second (default 50), against a 3-member etcd cluster whose leader is killed every
// SOAK_LEADER_KILL_S (default 120 s), one follower killed and restarted every SOAK_MEMBER_RESTART_S (default 90 s), and
// every member killed and restarted at once every SOAK_RESTART_S (default 45 s), with compactions. As root, SOAK_HOSTS
// skeind hosts (default 2) run in namespaces with their kernels followed by `ip -ts monitor route` throughout, as in
// the CI soak (test/config/datastore-soak.test.ts). Exits 1 if any check found a datastore out of line with etcd, a host's
// kernel or Loc-RIB out of line with it at the end, or a route missing from a host's kernel at any moment the
// datastore did not ask for its removal (SOAK_SETTLE_S, default 10 s, for a kernel to follow a change).
import { runSoak } from '../../test/helpers/soak.js';

const seconds = Number(process.env.SOAK_SECONDS ?? 1800);
const mib = (n: number): string => `${(n / 1048576).toFixed(0)} MiB`;
// as root, two of the nodes run skeind in namespaces; their kernels and Loc-RIBs are checked at the end
const hosts = process.getuid?.() === 0 ? Number(process.env.SOAK_HOSTS ?? 2) : 0;
if (hosts === 0) console.log('not root: no skeind hosts, the kernel and Loc-RIB are not checked');
// a 3-member cluster whose leader is killed every SOAK_LEADER_KILL_S seconds (default 120; 0: one member, no kills)
const leaderKill = Number(process.env.SOAK_LEADER_KILL_S ?? 120) * 1000;
const memberRestart = Number(process.env.SOAK_MEMBER_RESTART_S ?? 90) * 1000;
const iso = (t: number): string => new Date(t).toISOString();
runSoak({
  seconds, clientPort: 24381, peerPort: 24382, rate: Number(process.env.SOAK_RATE ?? 50), hosts, settleMs: Number(process.env.SOAK_SETTLE_S ?? 10) * 1000,
  ...(leaderKill > 0 ? { leaderKillEveryMs: leaderKill, ...(memberRestart > 0 ? { memberRestartEveryMs: memberRestart } : {}) } : {}),
  ...(process.env.SOAK_RESTART_S ? { restartEveryMs: Number(process.env.SOAK_RESTART_S) * 1000 } : {}), log: (l) => console.log(`${new Date().toISOString()} ${l}`),
})
  .then((r) => {
    console.log(`soak ${seconds} s: ${r.ops} changes (${r.unsure} unsure, read back), ${r.checks} checks, ${r.restarts} etcd restarts, ${r.leaderKills} leader kills, ${r.memberRestarts} follower restarts, ${r.compactions} compactions, ${r.mismatches.length} mismatches; RSS ${mib(r.rss[0] ?? 0)} -> ${mib(r.rss[r.rss.length - 1] ?? 0)}, fds at each check ${r.fds.join(' ')} (etcd disruptions by then: ${r.restartsBy.join(' ')})`);
    if (hosts > 0) console.log(`routes: ${r.routeTimeline.prefixes} host prefixes judged over ${(r.routeTimeline.judgedMs / 1000).toFixed(0)} s (${r.routeTimeline.intents} intents, ${r.routeTimeline.kernelChanges} kernel changes, monitors ${r.routeTimeline.monitorsAlive ? 'ran throughout' : 'DIED'}): ${r.routeGaps.length} gaps, ${r.routeLingering.length} lingering`);
    for (const m of r.mismatches) console.log(`mismatch: ${m}`);
    for (const m of r.hostMismatches) console.log(`host mismatch: ${m}`);
    for (const g of r.routeGaps) console.log(`route gap: ${g.host} ${g.prefix} ${g.kind} from ${iso(g.from)} for ${g.to - g.from} ms`);
    for (const g of r.routeLingering) console.log(`route lingering: ${g.host} ${g.prefix} from ${iso(g.from)} for ${g.to - g.from} ms`);
    const bad = r.mismatches.length > 0 || r.hostMismatches.length > 0 || r.routeGaps.length > 0 || (hosts > 0 && !r.routeTimeline.monitorsAlive);
    process.exit(bad ? 1 : 0);
  })
  .catch((e: unknown) => { console.error(e); process.exit(1); });
