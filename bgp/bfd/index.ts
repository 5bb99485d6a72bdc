// The public surface of bgp/bfd: BFD (RFC 5880) with its single-hop (RFC 5881)
// and multihop (RFC 5883) UDP driver. The codec, the session machine and the
// manager are Sans-IO; udp.ts is the only I/O. ipc.ts is the pure protocol to
// the companion process (skein-bfdd) that can own the sessions instead.
export * from './packet.js';
export * from './session.js';
export * from './manager.js';
export * from './udp.js';
export * from './ipc.js';
