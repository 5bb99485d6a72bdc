// A Speaker in a child process, for tests that need it inside a network
// namespace (a Node process cannot switch namespace itself):
//   ip netns exec NS node dist/test/helpers/speaker-agent.js
// Commands come as JSON lines on stdin, one answer per command on stdout:
//   {"id":1,"cmd":"start","config":SpeakerOptions}   → {"id":1,"ok":true}
//   {"id":2,"cmd":"originate","prefix":"10.0.0.0/24","attrs":{...}}
//   {"id":3,"cmd":"withdraw","prefix":"10.0.0.0/24"}
//   {"id":4,"cmd":"peers"}  → {"id":4,"ok":true,"result":{"peers":[...]}}
//   {"id":5,"cmd":"routes","prefix"?:"..."}
//   {"id":6,"cmd":"stop","message"?:"..."}  (then the process exits)
// Peer state changes are reported unasked as {"event":"peer",...}. The JSON-lines loop: json-lines.ts.
import { Speaker, type PathAttributes, type SpeakerOptions } from '../../bgp/index.js';
import { emit as out, serveJsonLines } from './json-lines.js';

interface Command {
  id: number;
  cmd: string;
  config?: SpeakerOptions;
  prefix?: string;
  attrs?: PathAttributes;
  message?: string;
}

let speaker: Speaker | null = null;

async function run(c: Command): Promise<unknown> {
  switch (c.cmd) {
    case 'start': {
      if (!c.config) throw new Error('start needs a config');
      speaker = new Speaker(c.config);
      speaker.on('peer', (e: { address: string; state: string; info: string }) => out({ event: 'peer', address: e.address, state: e.state, info: e.info }));
      speaker.on('log', (l: unknown) => out({ event: 'log', log: l }));
      await speaker.start();
      return null;
    }
    case 'originate':
      need().originate(c.prefix ?? '', c.attrs ?? {});
      return null;
    case 'withdraw':
      return need().withdraw(c.prefix ?? '');
    case 'peers':
      return need().peersJson();
    case 'routes':
      return need().routesJson(c.prefix);
    case 'stop':
      await speaker?.stop(c.message !== undefined ? { message: c.message } : {});
      setTimeout(() => process.exit(0), 200);
      return null;
    default:
      throw new Error(`unknown command ${c.cmd}`);
  }
}

function need(): Speaker {
  if (!speaker) throw new Error('not started');
  return speaker;
}

serveJsonLines({
  handle: (c) => run(c as unknown as Command),
  onClose: () => speaker?.stop(),
});
