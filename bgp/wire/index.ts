// The BGP-4 wire codec: pure functions from bytes to messages and back.
export * from './constants.js';
export * from './errors.js';
export type * from './types.js';
export { DEFAULT_CONTEXT } from './types.js';
export * from './prefix.js';
export * from './header.js';
export * from './framer.js';
export * from './capabilities.js';
export * from './open.js';
export * from './notification.js';
export * from './keepalive.js';
export * from './route-refresh.js';
export * from './json.js';
export * from './message.js';
export { decodeUpdate, encodeUpdate, isEndOfRib, endOfRib, packUpdates, packWithdrawals, maxMessageLength } from './update.js';
export { countAsns, toAs2, fromAs2 } from './as4.js';
