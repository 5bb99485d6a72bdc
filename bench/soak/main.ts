// `npm run soak`: the datastore soak (test/helpers/soak.ts) for SOAK_SECONDS (default 1800: 30 minutes) at
// SOAK_RATE changes per second (default 50), against a 3-member etcd cluster whose leader is killed every
// SOAK_LEADER_KILL_S (default 120 s), with every member killed and restarted every SOAK_RESTART_S (default 45 s). Exits 1 if any check found a datastore out of line with etcd, or (as
// root, SOAK_HOSTS skeind hosts, default 2) a host's kernel or Loc-RIB out of line with it at the end.
import { runSoak } from '../../test/helpers/soak.js';

const seconds = Number(process.env.SOAK_SECONDS ?? 1800);
const mib = (n: number): string => `${(n / 1048576).toFixed(0)} MiB`;
// as root, two of the nodes run skeind in namespaces; their kernels and Loc-RIBs are checked at the end
const hosts = process.getuid?.() === 0 ? Number(process.env.SOAK_HOSTS ?? 2) : 0;
if (hosts === 0) console.log('not root: no skeind hosts, the kernel and Loc-RIB are not checked');
// a 3-member cluster whose leader is killed every SOAK_LEADER_KILL_S seconds (default 120; 0: one member, no kills)
const leaderKill = Number(process.env.SOAK_LEADER_KILL_S ?? 120) * 1000;
runSoak({ seconds, clientPort: 24381, peerPort: 24382, rate: Number(process.env.SOAK_RATE ?? 50), hosts, ...(leaderKill > 0 ? { leaderKillEveryMs: leaderKill } : {}),
  ...(process.env.SOAK_RESTART_S ? { restartEveryMs: Number(process.env.SOAK_RESTART_S) * 1000 } : {}), log: (l) => console.log(`${new Date().toISOString()} ${l}`) })
  .then((r) => {
    console.log(`soak ${seconds} s: ${r.ops} changes, ${r.checks} checks, ${r.restarts} etcd restarts, ${r.leaderKills} leader kills, ${r.compactions} compactions, ${r.mismatches.length} mismatches; RSS ${mib(r.rss[0] ?? 0)} -> ${mib(r.rss[r.rss.length - 1] ?? 0)}, fds at each check ${r.fds.join(' ')} (etcd restarts by then: ${r.restartsBy.join(' ')})`);
    for (const m of r.mismatches) console.log(`mismatch: ${m}`);
    for (const m of r.hostMismatches) console.log(`host mismatch: ${m}`);
    process.exit(r.mismatches.length > 0 || r.hostMismatches.length > 0 ? 1 : 0);
  })
  .catch((e: unknown) => { console.error(e); process.exit(1); });
