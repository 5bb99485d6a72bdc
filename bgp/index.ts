// The public surface of bgp/, by name (no `export *`): what src/ and the benchmarks use, then what the tests use
// beyond that. Anything else is private to bgp/; a new user adds the name here. Layers: wire (codec), net (socket
// options, sd_notify), session (FSM and negotiation, Sans-IO), rib (RIBs, decision, policy), speaker (the node:net
// driver around the engine), bfd (RFC 5880/5881/5883). Both the codec and the session layer have a validateOpen:
// the session's one (syntax plus what we expect of this peer) is the one exported.

// ---- used by src/ and bench/
export {
  BgpError, type CodecContext, decodeMessage, DEFAULT_CONTEXT, encodeMessage, errorToJson, Framer, IPV4_UNICAST,
  IPV6_UNICAST, jsonToText, MESSAGE_TYPE_NAMES, messageToJson, packUpdates, packWithdrawals, parseIpv4,
  type PathAttributes, prefix4, type PrefixList, type UpdateMessage,
} from './wire/index.js';
export {
  mallocTrim, sdNotify, startIncrementalGc,
} from './net/index.js';
export {
  buildCapabilities,
} from './session/index.js';
export {
  type AddPathSend, type BestBatch, checkRules, Path, PATH_EPOCH_MS, type PeerRules, type PrefixKey, type Reachability, type Reason,
  RibCore, type Rule, type RuleOperation, type RuleSet, type SessionTerms,
  NextHopResolver, type ResolvingRoute, type ViaHop,
} from './rib/index.js';
export {
  type BestEvent, LogRateLimit, parsePrefixText, type PeerInfo, type PeerJson, type PeerOptions,
  type PeerStateEvent, prefixText, Speaker, type SpeakerOptions,
} from './speaker/index.js';
export {
  type BfdKey, type BfdOutput, type BfdParams, type BfdSessionInfo, BfdUdpDriver, keyString,
} from './bfd/index.js';
// src/daemon's streamed routes (route-query.ts, prefix-walk.ts) and live migration's announcement watch (migration.ts)
export {
  communityText, ORIGIN_NAMES, parseIpv6, type Prefix4, type Prefix6, prefix6Addr, prefix6Len,
} from './wire/index.js';
export { native } from './net/index.js';
export { unusableWhy } from './rib/index.js';
export { pathJson, type PathJson, reasonText } from './speaker/index.js';
export {
  type ClientMessage, encodeIpc, fromIpcSession, IPC_VERSION, IpcError, type IpcEvent, type IpcSession,
  LineReader, MAX_LINE, MAX_SESSIONS, parseClientMessage, parseServerMessage, type ServerMessage, toIpcSession,
} from './bfd/index.js';

// ---- used by the tests (engine internals they drive directly)
export {
  type AsPathSegment, type Capability, CeaseSubcode, decodeUpdate, encodeCapability, endOfRib, ErrorCode, familyKey,
  ipv4ToString, isEndOfRib, LLGR_STALE, type Message, NO_LLGR, type NotificationMessage, type OpenMessage,
  prefix4ToString, prefix6FromBytes, shutdownData,
} from './wire/index.js';
export {
  bindSocket, createSocket, setIntOpt, sockoptConstants,
} from './net/index.js';
export {
  collisionWinner, EVENT_TYPES, type FsmAction, type FsmConfig, type FsmEvent, type FsmEventType, MIN_SEND_HOLD_MS,
  negotiate, type NegotiatedSession, notificationOf, OPEN_HOLD_MS, SessionFsm, type State, STATES, TABLE,
  validateOpen,
} from './session/index.js';
export {
  addressSortKey, AttrTable, compare, evaluate, globToRegExp, isUsable, NextHopTable, type OutBatch,
  type PathSource, type PeerConfig, type PolicyError, selectBest,
} from './rib/index.js';
export {
  type EndOfRibEvent, type RouteJson, type StaleEvent,
} from './speaker/index.js';
export {
  BFD_DIAG, BFD_EVENT_TYPES, BFD_SOURCE_PORT_MAX, BFD_SOURCE_PORT_MIN, BFD_STATE_CODE, BFD_STATES, BFD_TABLE,
  type BfdAction, BfdError, type BfdEvent, type BfdEventType, BfdManager, BfdSession, type BfdState,
  bgpActionOnBfdDown, type ControlPacket, decodeControl, diagName, encodeControl, receiveEvent, SLOW_TX_US,
} from './bfd/index.js';
