// The BGP-4 wire codec: pure functions from bytes to messages and back. Exported by name: what the rest of bgp/
// (bgp/index.ts) and the tests take from here; bgp/'s own layers import the codec's files directly.
export {
  CeaseSubcode, ErrorCode, familyKey, IPV4_UNICAST, IPV6_UNICAST, LLGR_STALE, MESSAGE_TYPE_NAMES, NO_LLGR, ORIGIN_NAMES,
} from './constants.js';
export { BgpError } from './errors.js';
export type {
  AsPathSegment, Capability, CodecContext, Message, NotificationMessage, OpenMessage, PathAttributes, PrefixList,
  Prefix4, Prefix6, UpdateMessage,
} from './types.js';
export { DEFAULT_CONTEXT } from './types.js';
export {
  ipv4ToString, parseIpv4, parseIpv6, prefix4, prefix4ToString, prefix6Addr, prefix6FromBytes, prefix6Len,
} from './prefix.js';
export { Framer } from './framer.js';
export { decodeCapabilities, encodeCapability } from './capabilities.js';
export { decodeOpen, openAsn, validateOpen } from './open.js';
export {
  decodeNotification, encodeNotification, errorSubcodeName, hardResetCause, shutdownCommunication, shutdownData,
} from './notification.js';
export { communityText, errorToJson, jsonToText, messageToJson } from './json.js';
export { decodeMessage, encodeMessage } from './message.js';
export {
  decodeUpdate, encodeUpdate, isEndOfRib, endOfRib, packUpdates, packWithdrawals, maxMessageLength,
} from './update.js';
export { countAsns, toAs2, fromAs2 } from './as4.js';
