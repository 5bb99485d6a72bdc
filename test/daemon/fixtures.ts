// Control-method results in docs/contract.md's shapes, served by a real ControlServer in the daemon tests, and a
// helper that starts such a server. Shared by test/daemon/daemon-control.test.ts and the spawned ctl-main entry.
import { ControlError, ControlServer } from '../../src/control/index.js';
import type { FibJson, PathJson, PeerJson, PeersJson, ReloadJson, RoutesJson, StatusJson } from '../../src/control/types.js';

export const NOW = new Date('2026-11-21T03:05:00Z');

export const PEERS: PeerJson[] = [
  {
    address: '192.0.2.11', port: 179, asn: 64512, localAsn: 64512, type: 'node-to-node mesh', state: 'Established',
    since: '2026-11-21T03:00:00Z', info: 'Established', families: ['ipv4-unicast'],
    prefixes: { received: 3, accepted: 3, advertised: 2 }, holdTime: 90, keepaliveTime: 30, routerId: '192.0.2.11',
  },
  {
    address: '192.0.2.254', port: 1179, asn: 65000, localAsn: 64512, type: 'global', state: 'Active',
    since: '2026-11-20T23:00:00Z', info: 'Connection refused', families: ['ipv4-unicast', 'ipv6-unicast'],
    prefixes: { received: 0, accepted: 0, advertised: 0 }, lastError: 'connect: ECONNREFUSED',
  },
  {
    address: 'fd00::11', port: 179, asn: 64512, localAsn: 64512, type: 'route reflector', state: 'OpenSent',
    since: '2026-11-21T03:04:58Z', info: '', families: ['ipv6-unicast'],
    prefixes: { received: 0, accepted: 0, advertised: 0 },
  },
];

export const STATUS: StatusJson = { node: 'host-a', routerId: '192.0.2.10', asn: 64512, ready: true, peers: PEERS };

const BEST: PathJson = {
  from: '192.0.2.11', nextHops: ['192.0.2.11'], asPath: [], origin: 'IGP', localPref: 100, med: 0,
  communities: ['65000:100'], largeCommunities: ['65000:1:2'], reason: 'best: lowest router ID',
};
const ALT: PathJson = {
  from: '192.0.2.254', nextHops: ['192.0.2.254'], asPath: [65000, 65001], origin: 'INCOMPLETE', localPref: 100,
  med: 10, communities: [], largeCommunities: [], reason: 'lost: longer AS path',
};
export const ROUTES: RoutesJson = {
  routes: [
    { prefix: '10.65.1.0/26', installed: true, best: BEST, paths: [ALT, BEST] },
    { prefix: '10.65.0.0/26', installed: true, best: { ...BEST, from: 'local', nextHops: [], reason: 'best: locally originated' }, paths: [{ ...BEST, from: 'local', nextHops: [], reason: 'best: locally originated' }] },
  ],
};

export const FIB: FibJson = {
  enabled: true, table: 254, protocol: 201,
  counts: { desired: 3, installed: 2, pending: 0, failed: 1 },
  routes: [
    { prefix: '10.65.0.0/26', desired: { type: 'blackhole', nextHops: [] }, kernel: { type: 'blackhole', nextHops: [] }, state: 'in-sync' },
    { prefix: '10.65.1.0/26', desired: { type: 'unicast', nextHops: ['192.0.2.11'] }, kernel: { type: 'unicast', nextHops: ['192.0.2.11'], dev: 'eth0' }, state: 'in-sync' },
    { prefix: '10.65.2.0/26', desired: { type: 'unicast', nextHops: ['192.0.2.99'] }, kernel: null, state: 'failed', error: 'ENETUNREACH: next hop 192.0.2.99 is not on a connected network' },
  ],
};

export const RELOAD: ReloadJson = { reloaded: true, message: 'configuration reloaded', changes: ['log.level: info -> debug'] };

/** A control server answering every skeinctl method with the fixtures above. */
export async function fixtureServer(path: string): Promise<ControlServer> {
  const server = new ControlServer({ path });
  server
    .handle('status', () => STATUS)
    .handle('peers', (): PeersJson => ({ peers: PEERS }))
    .handle('routes', (params) => {
      const p = params.prefix;
      if (p === undefined) return ROUTES;
      if (p === '10.99.0.0/16') throw new ControlError('routes: the RIB is still loading', 'not-ready');
      return { routes: ROUTES.routes.filter((r) => r.prefix === p) };
    })
    .handle('fib', () => FIB)
    .handle('reload', () => RELOAD);
  await server.listen();
  return server;
}
