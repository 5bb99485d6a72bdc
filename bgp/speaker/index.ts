// The BGP speaker: sockets, timers and the glue between the session FSM and
// the RIB core. What the daemon uses to run BGP.
export { Speaker } from './speaker.js';
export { notificationText, parsePrefixText, prefixText } from './text.js';
export { STALL_MS } from './stall.js';
export { LogRateLimit } from './rate-limit.js';
export type { StallEvent } from './stall.js';
export type { PeerCounters, PeerInfo, PeerStateEvent, BestEvent, EndOfRibEvent, StaleEvent, StopOptions } from './types.js';
export type { GracefulRestartJson } from './llgr.js';
export { sessionKey, normalizeAddress, FAMILY_KEYS, familyNameOf } from './config.js';
export type { FamilyName, PeerOptions, SpeakerOptions } from './config.js';
export { pathJson, reasonText } from './json.js';
export type { PathJson, PeerJson, RouteJson, LocalRestartJson } from './json.js';
