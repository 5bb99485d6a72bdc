// bindMode NodeIP on a dual-stack node: Calico's bird listens on the node's IPv4 address and bird6 on its IPv6 one
// (confd/pkg/backends/calico/bgp_processor.go sets ListenAddress per IP version; bird.cfg.template and
// bird6.cfg.template render `listen bgp address ...`). skeind gives its speaker both (src/daemon/mapping.ts
// speakerIdentity); here the speaker itself, over loopback: a session arrives on each address, and nothing listens
// on an address it was not given.
import t from 'tap';
import net from 'node:net';
import { loopbackNet, loopbackSpeaker } from '../helpers/loopback.js';
import { until } from '../helpers/netns.js';

const addr = loopbackNet();
const port = 20179 + (process.pid % 4000);

const refused = (host: string, p: number): Promise<boolean> => new Promise((resolve) => {
  const s = net.connect({ host, port: p });
  s.once('connect', () => { s.destroy(); resolve(false); });
  s.once('error', (e: NodeJS.ErrnoException) => resolve(e.code === 'ECONNREFUSED'));
});

t.test('a speaker given two listen addresses takes sessions on both, on one port', async (t) => {
  const a = loopbackSpeaker(addr, port, 1, 64512, [
    { address: addr(2), asn: 64512, passive: true },
    { address: '::1', asn: 64512, passive: true },
  ], { listenAddress: [addr(1), '::1'] });
  const b = loopbackSpeaker(addr, port, 2, 64512, [{ address: addr(1), asn: 64512, port, sourceAddress: addr(2) }], { listenAddress: null });
  const c = loopbackSpeaker(addr, port, 3, 64512, [{ address: '::1', asn: 64512, port, sourceAddress: '::1' }], { listenAddress: null, routerId: '10.0.0.3' });
  t.teardown(async () => {
    await Promise.all([a.stop(), b.stop(), c.stop()]);
  });
  await a.start();
  t.equal(a.port, port);
  await b.start();
  await c.start();
  const up = (s: typeof a, peer: string): boolean => s.peerInfo(peer)?.state === 'Established';
  await until(() => up(a, addr(2)) && up(a, '::1'), 'both sessions Established', 20_000, 50);
  t.pass('IPv4 and IPv6 sessions established to the two listen addresses');
  t.ok(await refused(addr(4), port), 'no listener on another address of the same family (not a wildcard)');
});

t.test('one listen address: the other family is not listened on', async (t) => {
  const a = loopbackSpeaker(addr, port + 1, 1, 64512, [], { listenAddress: addr(1) });
  t.teardown(() => a.stop());
  await a.start();
  t.ok(await refused('::1', port + 1), 'nothing on ::1');
  t.notOk(await refused(addr(1), port + 1), 'the IPv4 address answers');
});
