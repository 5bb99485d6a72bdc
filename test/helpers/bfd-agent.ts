// A BFD UDP driver in a child process, for tests that need it inside a network
// namespace:  ip netns exec NS node dist/test/helpers/bfd-agent.js
// Commands are JSON lines on stdin, one answer per command on stdout
// (the protocol of agent-client.ts):
//   {"id":1,"cmd":"add","key":BfdKey,"params":BfdParams}
//   {"id":2,"cmd":"update","key":...,"params":...}   {"id":3,"cmd":"remove","key":...}
//   {"id":4,"cmd":"sessions"} → {"id":4,"ok":true,"result":[BfdSessionInfo...]}
//   {"id":5,"cmd":"close","graceful":false}  (sockets closed; the process stays for inspection)
// Session events come unasked as {"event":"bfd","output":{type:"up"|"down"|"state"|"discard",...},"atMs":wall clock ms}.
import { BfdUdpDriver, type BfdKey, type BfdParams } from '../../bgp/index.js';
import { emit as out, serveJsonLines } from './json-lines.js';

interface Command {
  id: number;
  cmd: string;
  key?: BfdKey;
  params?: BfdParams;
  graceful?: boolean;
}

const driver = new BfdUdpDriver({
  onEvent: (e) => out({ event: 'bfd', output: e.type === 'send' ? undefined : e, atMs: Date.now() }),
  onError: (err, where) => out({ event: 'error', where, message: err.message }),
});

async function run(c: Command): Promise<unknown> {
  const key = (): BfdKey => {
    if (!c.key) throw new Error(`${c.cmd} needs a key`);
    return c.key;
  };
  switch (c.cmd) {
    case 'add':
      if (!c.params) throw new Error('add needs params');
      await driver.add(key(), c.params);
      return { sourcePort: driver.sourcePort(key()) };
    case 'update':
      if (!c.params) throw new Error('update needs params');
      driver.update(key(), c.params);
      return null;
    case 'remove':
      driver.remove(key());
      return null;
    case 'sessions':
      return driver.manager.sessions();
    case 'counters':
      return { sent: driver.packetsSent, received: driver.packetsReceived, discarded: Object.fromEntries(driver.manager.discarded) };
    case 'close':
      await driver.close({ graceful: c.graceful ?? false });
      return null;
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

serveJsonLines({
  handle: (c) => run(c as unknown as Command),
  onClose: () => driver.close(),
});
