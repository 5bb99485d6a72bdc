// The public surface of bgp/net: socket options for BGP session protection
// (TCP MD5, GTSM), connections configured before the SYN, and sd_notify.
export {
  type ConnectOptions,
  type Family,
  type Md5Key,
  MD5_MAX_KEY_LEN,
  bindSocket,
  closeSocket,
  connectWithOptions,
  createSocket,
  fdOf,
  getIntOpt,
  setIntOpt,
  setListenerMd5,
  setMd5Key,
  setMinTtl,
  setTtl,
  setTtlSecurity,
  socketFamily,
  sockoptConstants,
} from './sockets.js';
export { sdNotify } from './notify.js';
export { mallocTrim, startIncrementalGc } from './memory.js';
export { type NativeConstants, addonPath, native } from './native.js';
