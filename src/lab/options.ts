// The lab's command line: its usage text, the options of `up` and the live commands, and the plan they make
// (topology.ts makePlan). Reads the machine only to learn whether FRR is installed.
import { existsSync, accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';
import { makePlan, RACK_LETTERS, type Plan, type PlanOptions, type Topology } from './topology.js';

export const FRR_DIR = '/usr/lib/frr';

export const DEFAULT_PREFIX = 'skl_';

const DEFAULT_STATE = '/run/skein-lab';

export const USAGE = `usage: npm start [-- OPTIONS]          build the lab, check it, leave it running
       npm run lab:down [-- --prefix P]   remove it (also after a lab that was killed)

  node dist/src/lab/main.js [up|down] [OPTIONS]

  --topology mesh|tor   mesh: node-to-node iBGP mesh (AS 64512);
                        tor (default): every host peers with a top-of-rack router
  --tor frr|bird|skein|none
                        the ToR router for --topology tor (default: frr when FRR is installed, else skein):
                        frr: FRR, eBGP, the ToR AS 65000 and one AS per host;
                        bird: BIRD 2, the same eBGP design;
                        skein: skeind as an iBGP route reflector (AS 64512, Calico's route-reflector
                        resources: the mesh off, every node peers with the Node labelled route-reflector)
                        none: same as --topology mesh
  --datastore file|etcd the datastore: file (default): one resources.yaml shared by every host;
                        etcd: one etcd (Debian etcd-server) in the fabric namespace on 10.10.0.2:2379
  --racks N             N racks (2-4; --topology tor with --tor frr or bird): hosts dealt round-robin to racks
                        a, b, ...; each rack its own segment 10.10.<r>.0/24, AS and ToR (AS 65000); the ToRs
                        iBGP peers over a spine segment; a rack's hosts an iBGP mesh plus eBGP to their ToR
  --rack-as distinct|shared
                        distinct (default): rack a AS 65001, rack b 65002, ...; shared: every rack AS 65001, so
                        a host sees its own AS in the other racks' routes
  --allow-own-as N      numAllowedLocalASNumbers on the hosts' ToR peerings (default 1 with --rack-as shared,
                        else unset); 0 shows the AS loop check dropping the other racks' routes
  --bird-hosts H[,H]    a mixed cluster (mesh only): these hosts run BIRD 2 configured as Calico's confd would
                        (mesh peers, block aggregates and blackholes, kernel learn), the others skeind
  --prefix P            namespace name prefix (default ${DEFAULT_PREFIX}); a lab per prefix
  --ipv4-only           no IPv6 (default: dual stack, fd00:: beside 10.x)
  --state-dir DIR       where the lab keeps its files (default ${DEFAULT_STATE})
  --help                this text

Live changes to a running lab (with its --prefix / --state-dir), made as Calico's CNI and IPAM, networking-calico
or a drain would make them: the datastore (resources.yaml or etcd) changes and every skeind follows.
  add-pod --host H --name N [--ip A] [--ip6 A6]
                        a pod on a Kubernetes host: namespace and cali veth, addresses from H's IPAM blocks (or
                        the ones given: outside H's blocks they are borrowed, announced by H as a /32), WorkloadEndpoint
  del-pod --name N      the pod's WorkloadEndpoint and namespace removed, its addresses released
  migrate-vm --name N --to H
                        a VM live-migrated: its tap moves to host H, its WorkloadEndpoint's node becomes H
  drain --host H        a host drained: its pods deleted, its block affinities and IPAM blocks released
`;

export class LabError extends Error {}

type Command = 'up' | 'down' | 'add-pod' | 'del-pod' | 'migrate-vm' | 'drain';

export const LIVE: readonly Command[] = ['add-pod', 'del-pod', 'migrate-vm', 'drain'];

export interface Options {
  command: Command;
  /** the live commands' arguments */
  host?: string;
  name?: string;
  ip?: string;
  ip6?: string;
  to?: string;
  topology: Topology;
  tor: 'frr' | 'bird' | 'skein' | 'none';
  racks: number;
  rackAs: 'distinct' | 'shared';
  allowOwnAs?: number;
  birdHosts: string[];
  prefix: string;
  stateRoot: string;
  ipv6: boolean;
  datastore: 'file' | 'etcd';
}

export function frrInstalled(): boolean {
  return ['zebra', 'bgpd'].every((b) => existsSync(join(FRR_DIR, b))) && which('vtysh') !== undefined;
}

export function which(cmd: string): string | undefined {
  for (const dir of (process.env.PATH ?? '/usr/sbin:/usr/bin:/sbin:/bin').split(delimiter).concat(['/usr/sbin', '/sbin'])) {
    const p = join(dir, cmd);
    try {
      accessSync(p, constants.X_OK);
      return p;
    } catch {
      /* next */
    }
  }
  return undefined;
}

export function parseOptions(argv: readonly string[]): Options | { help: true } {
  let command: Command = 'up';
  const live: Pick<Options, 'host' | 'name' | 'ip' | 'ip6' | 'to'> = {};
  let topology: Topology | undefined;
  let tor: Options['tor'] | undefined;
  let prefix = DEFAULT_PREFIX;
  let stateRoot = DEFAULT_STATE;
  let ipv6 = true;
  let datastore: Options['datastore'] = 'file';
  let racks = 0;
  let rackAs: Options['rackAs'] = 'distinct';
  let allowOwnAs: number | undefined;
  let birdHosts: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const eq = a.indexOf('=');
    const name = a.startsWith('--') && eq > 0 ? a.slice(0, eq) : a;
    const value = (): string => {
      const v = a.startsWith('--') && eq > 0 ? a.slice(eq + 1) : argv[++i];
      if (v === undefined || v === '') throw new LabError(`${name} needs a value`);
      return v;
    };
    switch (name) {
      case 'up':
      case 'down':
      case 'add-pod':
      case 'del-pod':
      case 'migrate-vm':
      case 'drain':
        command = name;
        break;
      case '--host':
      case '--name':
      case '--ip':
      case '--ip6':
      case '--to': {
        const v = value();
        if (!/^[a-z0-9][a-z0-9.:-]{0,39}$/i.test(v)) throw new LabError(`${name}: "${v}" is not a plain name or address`);
        live[name.slice(2) as keyof typeof live] = v;
        break;
      }
      case '--help':
      case '-h':
        return { help: true };
      case '--topology': {
        const v = value();
        if (v !== 'mesh' && v !== 'tor') throw new LabError(`--topology: "${v}" is not mesh or tor`);
        topology = v;
        break;
      }
      case '--tor': {
        const v = value();
        if (v !== 'frr' && v !== 'bird' && v !== 'skein' && v !== 'none') throw new LabError(`--tor: "${v}" is not frr, bird, skein or none`);
        tor = v;
        break;
      }
      case '--racks': {
        const v = value();
        if (!/^[2-9]$/.test(v) || Number(v) > RACK_LETTERS.length) throw new LabError(`--racks: "${v}" is not 2-${RACK_LETTERS.length}`);
        racks = Number(v);
        break;
      }
      case '--rack-as': {
        const v = value();
        if (v !== 'distinct' && v !== 'shared') throw new LabError(`--rack-as: "${v}" is not distinct or shared`);
        rackAs = v;
        break;
      }
      case '--allow-own-as': {
        const v = value();
        // Calico's validation: numAllowedLocalASNumbers is 0-10.
        if (!/^\d+$/.test(v) || Number(v) > 10) throw new LabError(`--allow-own-as: "${v}" is not 0-10`);
        allowOwnAs = Number(v);
        break;
      }
      case '--bird-hosts': {
        const v = value();
        birdHosts = v.split(',').filter((x) => x !== '');
        for (const b of birdHosts) if (!/^[a-z0-9][a-z0-9-]{0,39}$/.test(b)) throw new LabError(`--bird-hosts: "${b}" is not a host name`);
        break;
      }
      case '--datastore': {
        const v = value();
        if (v !== 'file' && v !== 'etcd') throw new LabError(`--datastore: "${v}" is not file or etcd`);
        datastore = v;
        break;
      }
      case '--prefix': {
        prefix = value();
        // Names become namespace names and file names; keep them plain and short.
        if (!/^[a-z][a-z0-9_.-]{0,11}$/.test(prefix)) throw new LabError(`--prefix: "${prefix}" must be 1-12 characters a-z 0-9 _ . - starting with a letter`);
        break;
      }
      case '--ipv4-only':
        ipv6 = false;
        break;
      case '--state-dir':
        stateRoot = value();
        break;
      default:
        throw new LabError(`unknown argument "${a}" (--help lists the options)`);
    }
  }
  if (tor === 'none' && topology === 'tor') throw new LabError('--topology tor needs a ToR router (--tor frr)');
  // The default: a ToR that peers with every host, FRR when installed, else skein as a route reflector.
  if (topology === undefined) topology = tor === 'none' ? 'mesh' : 'tor';
  if (topology === 'tor' && tor === undefined) tor = frrInstalled() ? 'frr' : 'skein';
  if (topology === 'mesh') tor = 'none';
  if (racks > 0) {
    if (topology !== 'tor' || (tor !== 'frr' && tor !== 'bird')) throw new LabError('--racks needs --topology tor with --tor frr or bird (a ToR per rack)');
    if (datastore === 'etcd') throw new LabError('--racks: the etcd datastore sits on the single fabric segment; use the file datastore');
  } else if (rackAs !== 'distinct' || allowOwnAs !== undefined) {
    throw new LabError('--rack-as and --allow-own-as need --racks');
  }
  if (birdHosts.length > 0 && topology !== 'mesh') throw new LabError('--bird-hosts: a mixed cluster runs the node-to-node mesh (--topology mesh)');
  const needs: Partial<Record<Command, (keyof typeof live)[]>> = { 'add-pod': ['host', 'name'], 'del-pod': ['name'], 'migrate-vm': ['name', 'to'], drain: ['host'] };
  for (const k of needs[command] ?? []) if (live[k] === undefined) throw new LabError(`${command} needs --${k}`);
  const o: Options = { command, topology, tor: tor!, racks, rackAs, ...(allowOwnAs !== undefined ? { allowOwnAs } : {}), birdHosts, prefix, stateRoot, ipv6, datastore, ...live };
  planFor(o); // names and combinations checked now, before anything is built
  return o;
}

/** The plan for these options (racks and BIRD hosts included); a bad host name is a LabError. */
export function planFor(o: Pick<Options, 'topology' | 'tor' | 'ipv6' | 'racks' | 'rackAs' | 'allowOwnAs' | 'birdHosts'>): Plan {
  const opts: PlanOptions = { racks: o.racks, rackAs: o.rackAs, birdHosts: o.birdHosts, ...(o.allowOwnAs !== undefined ? { allowOwnAs: o.allowOwnAs } : {}) };
  try {
    return makePlan(o.topology, o.ipv6, o.tor === 'skein' ? 'skein' : o.tor === 'bird' ? 'bird' : 'frr', opts);
  } catch (e) {
    throw new LabError((e as Error).message);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Small process helpers. Every wait is bounded.
