// The BGP-4 wire codec: pure functions from bytes to messages and back.
export * from './constants.js';
export * from './errors.js';
export type * from './types.js';
export { DEFAULT_CONTEXT } from './types.js';
export * from './prefix.js';
