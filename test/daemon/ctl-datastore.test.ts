// The Datastore line of `skeinctl status`: state, stale since, revision, and the reason while not synced or held.
import t from 'tap';
import { renderStatus } from '../../src/ctl/index.js';

const NOW = new Date('2026-12-05T06:00:00Z');
const base = { node: 'host-a', routerId: '192.0.2.10', asn: 64512, ready: true, peers: [] };

t.test('skeinctl status shows the datastore', (t) => {
  const synced = renderStatus({ ...base, datastore: { type: 'etcd', state: 'synced', since: '2026-12-05T05:00:00Z', revision: '724', lastError: 'old' } }, NOW);
  t.match(synced, /Datastore:\s+etcd synced, revision 724\n/);
  t.notMatch(synced, /old/, 'a recovered error is not shown as current');
  const stale = renderStatus({ ...base, datastore: { type: 'etcd', state: 'disconnected', since: '2026-12-05T05:59:30Z', revision: '724', lastError: 'watch stale, resuming from revision 724: no response' } }, NOW);
  t.match(stale, /Datastore:\s+etcd disconnected \(stale since 2026-12-05 05:59:30 \(30s ago\)\), revision 724: watch stale, resuming from revision 724/);
  const held = renderStatus({ ...base, datastore: { type: 'file', state: 'synced', since: '2026-12-05T05:00:00Z', held: "it drops this node's own Node host-a" } }, NOW);
  t.match(held, /Datastore:\s+file synced; newest file held: it drops this node's own Node host-a/);
  t.notMatch(renderStatus(base, NOW), /Datastore/, 'no line from a daemon that does not report it');
  t.end();
});
