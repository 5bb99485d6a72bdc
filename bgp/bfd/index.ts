// The public surface of bgp/bfd: BFD (RFC 5880) with its single-hop (RFC 5881)
// and multihop (RFC 5883) UDP driver. The codec, the session machine and the
// manager are Sans-IO; udp.ts is the only I/O. ipc.ts is the pure protocol to
// the companion process (skein-bfdd) that can own the sessions instead.
export {
  BFD_DIAG, BFD_STATE_CODE, BFD_STATES, BfdError, type BfdState, type ControlPacket, decodeControl, diagName,
  encodeControl,
} from './packet.js';
export {
  BFD_EVENT_TYPES, BFD_TABLE, type BfdAction, type BfdEvent, type BfdEventType, type BfdParams, BfdSession,
  bgpActionOnBfdDown, receiveEvent, SLOW_TX_US,
} from './session.js';
export { type BfdKey, BfdManager, type BfdOutput, type BfdSessionInfo, keyString } from './manager.js';
export { BFD_SOURCE_PORT_MAX, BFD_SOURCE_PORT_MIN, BfdUdpDriver } from './udp.js';
export {
  type ClientMessage, encodeIpc, fromIpcSession, IPC_VERSION, IpcError, type IpcEvent, type IpcSession, LineReader,
  MAX_LINE, MAX_SESSIONS, parseClientMessage, parseServerMessage, type ServerMessage, toIpcSession,
} from './ipc.js';
