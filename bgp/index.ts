// The public surface of bgp/: what src/ may use. Everything else is private.
export * from './wire/index.js';
export * from './net/index.js';
// The engine: session FSM and negotiation (Sans-IO), RIBs, decision process.
export * from './session/index.js';
export * from './rib/index.js';
// Both the codec and the session layer have a validateOpen: the session's one
// (syntax plus what we expect of this peer) is the one users of bgp/ want.
export { validateOpen } from './session/index.js';
// The speaker: node:net driver around the engine.
export * from './speaker/index.js';
// BFD (RFC 5880/5881/5883): codec, Sans-IO sessions and manager, UDP driver.
export * from './bfd/index.js';
