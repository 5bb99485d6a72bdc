// The convergence benchmark's etcd client, run inside the fabric namespace (`ip netns exec <fabric> node
// dist/bench/converge/etcd-writer.js <endpoint>`): the benchmark itself runs in the root namespace, where etcd
// (listening on the fabric bridge) cannot be reached, and a Node process cannot switch namespace.
// Protocol on stdin/stdout, one JSON object per line:
//   in:  {"id": n, "key": "...", "value": "..."}
//   out: {"id": n, "t0": ms, "t1": ms}            t0 just before the put is sent, t1 when etcd acknowledged it
//        {"id": n, "error": "..."}
// Times are Date.now() with performance.now()'s fraction: CLOCK_REALTIME, the clock `ip -ts monitor` prints.
import { createInterface } from 'node:readline';
import { Etcd3 } from 'etcd3';

const endpoint = process.argv[2];
if (endpoint === undefined) {
  process.stderr.write('usage: etcd-writer.js http://ADDRESS:PORT\n');
  process.exit(2);
}
const client = new Etcd3({ hosts: endpoint, dialTimeout: 5000 });
const origin = Date.now() - performance.now();
const now = (): number => origin + performance.now();

const rl = createInterface({ input: process.stdin });
rl.on('line', (line) => {
  let msg: { id: number; key: string; value: string };
  try {
    msg = JSON.parse(line) as typeof msg;
  } catch {
    process.stdout.write(`${JSON.stringify({ id: -1, error: `not JSON: ${line.slice(0, 80)}` })}\n`);
    return;
  }
  const t0 = now();
  client.put(msg.key).value(msg.value).then(
    () => process.stdout.write(`${JSON.stringify({ id: msg.id, t0, t1: now() })}\n`),
    (e: unknown) => process.stdout.write(`${JSON.stringify({ id: msg.id, error: String(e) })}\n`),
  );
});
rl.on('close', () => {
  client.close();
});
