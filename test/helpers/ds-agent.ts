// An EtcdDatastore in a child process, for tests that need the client inside a network namespace (a Node process
// cannot switch namespace itself):  ip netns exec NS node dist/test/helpers/ds-agent.js ENDPOINTS_JSON OPTIONS_JSON
// It reports on stdout, one JSON line each: {"event":"status",...DatastoreStatus}, {"event":"change",kind,id,type,
// revision}, and every second {"event":"model","size":N}. SIGTERM closes it.
import { EtcdDatastore, type EtcdDatastoreOptions } from '../../config/index.js';
import { emit as out } from './json-lines.js';

const endpoints = JSON.parse(process.argv[2] ?? '[]') as string[];
const extra = JSON.parse(process.argv[3] ?? '{}') as Partial<EtcdDatastoreOptions>;
const ds = new EtcdDatastore({ endpoints, ...extra });
ds.on('status', (s) => out({ event: 'status', ...s }));
ds.on('change', (e) => out({ event: 'change', kind: e.kind, id: e.id, type: e.type, revision: e.revision }));
ds.start();
const timer = setInterval(() => out({ event: 'model', size: ds.model.size, state: ds.status.state }), 1000);
process.on('SIGTERM', () => { clearInterval(timer); void ds.close().then(() => process.exit(0)); });
