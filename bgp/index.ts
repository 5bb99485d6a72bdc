// The public surface of bgp/: what src/ may use. Everything else is private.
export * from './wire/index.js';
export * from './net/index.js';
