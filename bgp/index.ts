// The public surface of bgp/: what src/ may use. Everything else is private.
export * from './wire/index.js';
export * from './net/index.js';
// The engine: session FSM and negotiation (Sans-IO), RIBs, decision process.
export * from './session/index.js';
export * from './rib/index.js';
