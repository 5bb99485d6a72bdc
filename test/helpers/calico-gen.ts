// Calico datastore records as Calico writes them to etcd (libcalico-go's
// model: IPAM blocks with one attribute per allocation, v3 Nodes and
// WorkloadEndpoints), generated at scale for tests, the soak and benchmarks.
import type { Etcd3 } from 'etcd3';

/** a /26 (64 addresses) in 10.64.0.0/10 numbered n */
export function block26(n: number): { cidr: string; keyPart: string; base: number[] } {
  const a = 64 + ((n >> 14) & 63);
  const b = (n >> 2) & 255;
  const c = (n & 3) * 64;
  return { cidr: `10.${a}.${b}.${c}/26`, keyPart: `10.${a}.${b}.${c}-26`, base: [10, a, b, c] };
}

export function blockKey(n: number): string {
  return `/calico/ipam/v2/assignment/ipv4/block/${block26(n).keyPart}`;
}

export function affinityKey(node: string, n: number): string {
  return `/calico/ipam/v2/host/${node}/ipv4/block/${block26(n).keyPart}`;
}

/** A /26 block with every address allocated to a pod on node (what a busy host's block looks like: ~16 KB). */
export function fullBlock(n: number, node: string, seq = 0): string {
  const allocations: number[] = [];
  const attributes: unknown[] = [];
  for (let i = 0; i < 64; i++) {
    allocations.push(i);
    const id = `${n.toString(16).padStart(8, '0')}${i.toString(16).padStart(4, '0')}${'c0ffee'.repeat(9)}`.slice(0, 64);
    attributes.push({
      handle_id: `k8s-pod-network.${id}`,
      secondary: { namespace: `ns-${n % 50}`, node, pod: `pod-${n}-${i}-7d9f8b6c4d-x2x9z`, timestamp: '2026-11-20 10:05:00.123456789 +0000 UTC' },
    });
  }
  const sequenceNumberForAllocation: Record<string, number> = {};
  for (let i = 0; i < 64; i++) sequenceNumberForAllocation[String(i)] = seq + i;
  return JSON.stringify({
    cidr: block26(n).cidr, affinity: `host:${node}`, allocations, unallocated: [], attributes,
    sequenceNumber: seq + 64, sequenceNumberForAllocation, deleted: false,
  });
}

export function affinityValue(): string {
  return JSON.stringify({ state: 'confirmed', deleted: false });
}

export function nodeKey(name: string): string {
  return `/calico/resources/v3/projectcalico.org/nodes/${name}`;
}

export function nodeValue(name: string, ipv4: string): string {
  return JSON.stringify({
    kind: 'Node', apiVersion: 'projectcalico.org/v3',
    metadata: { name, uid: `00000000-0000-4000-8000-${Buffer.from(name).toString('hex').slice(0, 12).padStart(12, '0')}`, creationTimestamp: '2026-11-20T10:00:00Z', labels: { 'kubernetes.io/hostname': name } },
    spec: { bgp: { ipv4Address: `${ipv4}/24` }, orchRefs: [{ orchestrator: 'k8s', nodeName: name }], addresses: [{ address: `${ipv4}/24`, type: 'CalicoNodeIP' }] },
  });
}

/** Calico's WorkloadEndpoint name for a k8s pod: node--pod-names with '-' doubled (libcalico-go names.go) */
export function wepName(node: string, pod: string): string {
  return `${node.replace(/-/g, '--')}-k8s-${pod.replace(/-/g, '--')}-eth0`;
}

export function wepKey(node: string, ns: string, pod: string): string {
  return `/calico/resources/v3/projectcalico.org/workloadendpoints/${ns}/${wepName(node, pod)}`;
}

export function wepValue(node: string, ns: string, pod: string, ip: string): string {
  return JSON.stringify({
    kind: 'WorkloadEndpoint', apiVersion: 'projectcalico.org/v3',
    metadata: {
      name: wepName(node, pod), namespace: ns, uid: '9e1a3c5d-7f8b-4dab-8e4a-2b0c8d6f4e9a', creationTimestamp: '2026-11-20T10:05:00Z',
      labels: { app: pod.split('-')[0], 'projectcalico.org/namespace': ns, 'projectcalico.org/orchestrator': 'k8s', 'projectcalico.org/serviceaccount': 'default' },
    },
    spec: {
      orchestrator: 'k8s', node, containerID: '0a1b2c3d4e5f', pod, endpoint: 'eth0', serviceAccountName: 'default',
      ipNetworks: [`${ip}/32`], profiles: [`kns.${ns}`, `ksa.${ns}.default`], interfaceName: `cali${Buffer.from(pod).toString('hex').slice(0, 11)}`, mac: 'ee:ee:ee:ee:ee:ee',
    },
  });
}

// The same records as documents of a file datastore's resources.yaml (what `calicoctl get -o yaml` prints).

/** A Node document: its BGP address `ipv4` (a prefix, e.g. 192.0.2.1/24). */
export function nodeYaml(name: string, ipv4: string): string {
  return `apiVersion: projectcalico.org/v3\nkind: Node\nmetadata:\n  name: ${name}\nspec:\n  bgp:\n    ipv4Address: ${ipv4}\n`;
}

/** A WorkloadEndpoint document of a k8s pod on `node`, named as Calico names it (wepName), at `ip`/32 on `iface`. */
export function wepYaml(node: string, ns: string, pod: string, ip: string, iface: string): string {
  return `apiVersion: projectcalico.org/v3
kind: WorkloadEndpoint
metadata:
  name: ${wepName(node, pod)}
  namespace: ${ns}
  labels:
    app: web
    projectcalico.org/namespace: ${ns}
    projectcalico.org/orchestrator: k8s
spec:
  orchestrator: k8s
  node: ${node}
  pod: ${pod}
  endpoint: eth0
  containerID: 0a1b2c3d4e5f
  ipNetworks:
    - ${ip}/32
  profiles: [kns.${ns}]
  interfaceName: ${iface}
  mac: ee:ee:ee:ee:ee:ee
`;
}

/** How a generated cluster's node k and its pod p are named and addressed (clusterYaml). */
export interface ClusterShape {
  nodes: number;
  perNode: number;
  /** documents before the Nodes (a BGPConfiguration, a pool) */
  head: readonly string[];
  nodeName(k: number): string;
  /** node k's BGP address, a prefix */
  nodeAddress(k: number): string;
  /** pod p of node k: its namespace, address and interface */
  pod(k: number, p: number): { ns: string; ip: string; iface: string };
}

export const podName = (k: number, p: number): string => `pod-${k}-${p}`;

/** A resources file: the head documents, every Node, then every node's WorkloadEndpoints (node by node). */
export function clusterYaml(c: ClusterShape): string {
  const docs = [...c.head];
  for (let k = 0; k < c.nodes; k++) docs.push(nodeYaml(c.nodeName(k), c.nodeAddress(k)));
  for (let k = 0; k < c.nodes; k++) {
    for (let p = 0; p < c.perNode; p++) {
      const { ns, ip, iface } = c.pod(k, p);
      docs.push(wepYaml(c.nodeName(k), ns, podName(k, p), ip, iface));
    }
  }
  return docs.join('---\n');
}

/** Run fn over items with at most `width` in flight. */
export async function inParallel<T>(items: readonly T[], width: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  let next = 0;
  const worker = async (): Promise<void> => {
    while (next < items.length) {
      const i = next++;
      await fn(items[i] as T);
    }
  };
  await Promise.all(Array.from({ length: Math.min(width, items.length) }, worker));
}


/**
 * A small cluster written to etcd: per node (index i) its Node (192.0.2.10+i), one full /26 block numbered i with its
 * affinity, and `pods` WorkloadEndpoints pod-0.. in namespaces ns-0/ns-1 at 10.64.i.1...
 */
export async function putSmallCluster(c: Etcd3, nodes: readonly string[], pods: number): Promise<void> {
  for (const [i, n] of nodes.entries()) {
    await c.put(nodeKey(n)).value(nodeValue(n, `192.0.2.${10 + i}`));
    await c.put(blockKey(i)).value(fullBlock(i, n));
    await c.put(affinityKey(n, i)).value(affinityValue());
    for (let p = 0; p < pods; p++) await c.put(wepKey(n, `ns-${p % 2}`, `pod-${p}`)).value(wepValue(n, `ns-${p % 2}`, `pod-${p}`, `10.64.${i}.${p + 1}`));
  }
}
