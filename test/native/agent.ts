// A small TCP client/server for the native-socket tests. Tests run it inside a
// network namespace (`ip netns exec NS node dist/test/native/agent.js JSON`),
// since a Node process cannot switch namespace itself. It prints JSON lines:
//   listen:  {"event":"listening"}, then {"event":"accepted","remote":...} per
//            connection; echoes "echo:" + whatever it receives. Runs until killed.
//   connect: one line {"ok":true,...} or {"ok":false,"code":...}, then exits.
import net from 'node:net';
import {
  connectWithOptions,
  fdOf,
  getIntOpt,
  setListenerMd5,
  setMinTtl,
  setTtl,
  sockoptConstants,
  type ConnectOptions,
} from '../../bgp/net/index.js';
import { emit as out } from '../helpers/json-lines.js';

interface ListenSpec {
  mode: 'listen';
  host: string;
  port: number;
  ipv6Only?: boolean;
  md5?: { peer: string; key: string | null; prefixLen?: number }[];
  ttl?: number;
  minTtl?: number;
}

interface ConnectSpec extends ConnectOptions {
  mode: 'connect';
  /** text to send once connected */
  send?: string;
  /** bytes (hex) to send once the first data has arrived (e.g. an OPEN in reply to the peer's) */
  replyHex?: string;
  /** wait for at least this many bytes, then report them (hex) */
  readBytes?: number;
  readTimeoutMs?: number;
}

/** Keys travel as JSON strings; "hex:..." stands for binary key bytes. */
const key = (k: string | null | undefined): string | Buffer | null | undefined =>
  typeof k === 'string' && k.startsWith('hex:') ? Buffer.from(k.slice(4), 'hex') : k;


async function listen(spec: ListenSpec): Promise<void> {
  const server = net.createServer({ noDelay: true }, (s) => {
    out({ event: 'accepted', remote: s.remoteAddress });
    s.on('data', (d) => s.write(`echo:${d.toString()}`));
    s.on('error', () => s.destroy());
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: spec.host, port: spec.port, ipv6Only: spec.ipv6Only ?? false }, resolve);
  });
  for (const m of spec.md5 ?? []) setListenerMd5(server, m.peer, key(m.key) ?? null, m.prefixLen);
  if (spec.ttl !== undefined) setTtl(fdOf(server), spec.ttl);
  if (spec.minTtl !== undefined) setMinTtl(fdOf(server), spec.minTtl);
  out({ event: 'listening' });
}

async function connect(spec: ConnectSpec): Promise<void> {
  const { mode: _mode, send, replyHex, readBytes, readTimeoutMs, md5Key, ...opts } = spec;
  let socket: net.Socket;
  try {
    const k = key(md5Key as string | null | undefined);
    socket = await connectWithOptions(k === undefined ? opts : { ...opts, md5Key: k });
  } catch (e) {
    const err = e as NodeJS.ErrnoException;
    out({ ok: false, code: err.code, message: err.message });
    return;
  }
  const c = sockoptConstants();
  const fd = fdOf(socket);
  const ttl = getIntOpt(fd, socket.remoteFamily === 'IPv6' ? c.IPPROTO_IPV6 : c.IPPROTO_IP,
    socket.remoteFamily === 'IPv6' ? c.IPV6_UNICAST_HOPS : c.IP_TTL);
  const chunks: Buffer[] = [];
  let got = 0;
  const want = readBytes ?? (send !== undefined ? `echo:${send}`.length : 0);
  const data = await new Promise<Buffer>((resolve) => {
    const timer = setTimeout(() => resolve(Buffer.concat(chunks)), readTimeoutMs ?? 5000);
    const done = (): void => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    };
    socket.on('data', (d: Buffer) => {
      if (chunks.length === 0 && replyHex !== undefined) socket.write(Buffer.from(replyHex, 'hex'));
      chunks.push(d);
      got += d.length;
      if (got >= want) done();
    });
    socket.on('error', done);
    socket.on('close', done);
    if (want === 0) done();
    if (send !== undefined) socket.write(send);
  });
  out({
    ok: true,
    localAddress: socket.localAddress,
    remoteAddress: socket.remoteAddress,
    ttl,
    data: data.toString('hex'),
  });
  socket.destroy();
}

const spec = JSON.parse(process.argv[2] ?? '{}') as ListenSpec | ConnectSpec;
if (spec.mode === 'listen') {
  listen(spec).catch((e: NodeJS.ErrnoException) => {
    out({ event: 'error', code: e.code, message: e.message });
    process.exit(1);
  });
  // eslint-disable-next-line @typescript-eslint/no-unnecessary-condition -- argv is JSON from the test: any mode can come
} else if (spec.mode === 'connect') {
  connect(spec).catch((e: NodeJS.ErrnoException) => {
    out({ ok: false, code: e.code ?? 'EAGENT', message: e.message });
  });
} else {
  process.stderr.write('usage: agent.js \'{"mode":"listen"|"connect",...}\'\n');
  process.exit(2);
}
