// Socket options Node's net module doesn't offer, for BGP session protection:
// TCP MD5 signatures (RFC 2385) and the Generalized TTL Security Mechanism
// (RFC 5082), plus outgoing connections that get those options between
// socket() and connect(), which net.connect() has no hook for.
import net from 'node:net';
import { native, type NativeConstants } from './native.js';

export type Family = 4 | 6;

/** Longest TCP MD5 key the kernel accepts (TCP_MD5SIG_MAXKEYLEN). */
export const MD5_MAX_KEY_LEN = 80;

/** A key as configured (a string is taken as its UTF-8 bytes, as BIRD and Calico do); null or empty deletes. */
export type Md5Key = Uint8Array | string | null;

/**
 * The kernel's socket-option numbers (IP_TTL, IP_MINTTL, IPV6_UNICAST_HOPS, ...),
 * from the headers the addon was compiled with. Loads the addon.
 */
export function sockoptConstants(): NativeConstants {
  return native().constants;
}

/**
 * The file descriptor under a connected/listening net.Socket or net.Server.
 * `_handle.fd` is undocumented but stable on POSIX systems.
 */
export function fdOf(handle: net.Socket | net.Server): number {
  const fd = (handle as unknown as { _handle?: { fd?: unknown } | null })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) {
    throw Object.assign(new Error('socket has no file descriptor (not listening/connected yet, or already closed)'), {
      code: 'EBADF',
    });
  }
  return fd;
}

/** A new non-blocking, close-on-exec TCP socket (not yet bound or connected). */
export function createSocket(family: Family): number {
  return native().socket(family);
}

/** Closes a descriptor from createSocket() that was never handed to a net.Socket. */
export function closeSocket(fd: number): void {
  native().close(fd);
}

/** Binds a socket from createSocket() to a numeric local address (IPv6 may carry %iface). */
export function bindSocket(fd: number, address: string, port = 0): void {
  native().bind(fd, address, port);
}

/** 4 or 6 for an IPv4/IPv6 socket, 0 for any other kind. */
export function socketFamily(fd: number): Family | 0 {
  return native().socketFamily(fd);
}

function keyBytes(key: Md5Key | undefined): Uint8Array | null {
  if (key === null || key === undefined) return null;
  if (typeof key === 'string') return Buffer.from(key, 'utf8');
  return key;
}

/**
 * Installs the RFC 2385 MD5 key for segments to and from `peerAddress`; a null
 * or empty key removes it. `prefixLen` makes the key cover a prefix
 * (TCP_MD5SIG_EXT), for a listener accepting peers from a range.
 *
 * On an IPv6 (dual-stack) socket an IPv4 peer is keyed by its IPv4-mapped
 * address, which is what the kernel matches for IPv4 connections on such a
 * socket; pass the plain IPv4 address and the addon maps it (prefixLen then
 * counts IPv4 bits). Keys must be set before connect() or, for passive peers,
 * on the listener: the SYN is already signed or checked.
 */
export function setMd5Key(fd: number, peerAddress: string, key: Md5Key, prefixLen?: number): void {
  const bytes = keyBytes(key);
  if (prefixLen === undefined) native().setMd5Sig(fd, peerAddress, bytes);
  else native().setMd5Sig(fd, peerAddress, bytes, prefixLen);
}

/** MD5 key on a listening server; accepted connections inherit it. */
export function setListenerMd5(server: net.Server, peerAddress: string, key: Md5Key, prefixLen?: number): void {
  setMd5Key(fdOf(server), peerAddress, key, prefixLen);
}

/** setsockopt(fd, level, name, int). */
export function setIntOpt(fd: number, level: number, name: number, value: number): void {
  native().setIntOpt(fd, level, name, value);
}

/** getsockopt(fd, level, name) as an int. */
export function getIntOpt(fd: number, level: number, name: number): number {
  return native().getIntOpt(fd, level, name);
}

function checkTtl(what: string, v: number, min: number): void {
  if (!Number.isInteger(v) || v < min || v > 255) {
    throw Object.assign(new TypeError(`${what} must be an integer in [${min}, 255], got ${String(v)}`), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
  }
}

/**
 * TTL (IPv4) / hop limit (IPv6) of outgoing segments. On an IPv6 socket both
 * are set, since IPv4 peers of a dual-stack socket are sent with IP_TTL.
 */
export function setTtl(fd: number, ttl: number): void {
  checkTtl('ttl', ttl, 1);
  const c = native().constants;
  const fam = socketFamily(fd);
  setIntOpt(fd, c.IPPROTO_IP, c.IP_TTL, ttl);
  if (fam === 6) setIntOpt(fd, c.IPPROTO_IPV6, c.IPV6_UNICAST_HOPS, ttl);
}

/**
 * Lowest TTL / hop limit accepted on incoming segments (IP_MINTTL /
 * IPV6_MINHOPCOUNT; 0 turns the check off). The kernel drops anything below
 * it, SYNs included. On an IPv6 socket both are set (IPv4-mapped peers are
 * checked against IP_MINTTL).
 */
export function setMinTtl(fd: number, minTtl: number): void {
  checkTtl('minTtl', minTtl, 0);
  const c = native().constants;
  const fam = socketFamily(fd);
  setIntOpt(fd, c.IPPROTO_IP, c.IP_MINTTL, minTtl);
  if (fam === 6) setIntOpt(fd, c.IPPROTO_IPV6, c.IPV6_MINHOPCOUNT, minTtl);
}

/**
 * RFC 5082 GTSM for a peer `hops` hops away (Calico's BGPPeer ttlSecurity):
 * send with TTL 255 and accept only TTL >= 256 - hops (so 255 for a directly
 * connected peer, since each router hop decrements the TTL once).
 */
export function setTtlSecurity(fd: number, hops: number): void {
  checkTtl('hops', hops, 1);
  setTtl(fd, 255);
  setMinTtl(fd, 256 - hops);
}

export interface ConnectOptions {
  /** numeric IPv4 or IPv6 address of the peer (IPv6 may carry %iface) */
  host: string;
  port: number;
  /** numeric local address to bind before connecting */
  localAddress?: string;
  localPort?: number;
  /** RFC 2385 key for this peer */
  md5Key?: Md5Key;
  /** outgoing TTL / hop limit (GTSM: 255) */
  ttl?: number;
  /** lowest accepted incoming TTL / hop limit (GTSM: 256 - hops) */
  minTtl?: number;
  /** Nagle off (default true): BGP messages are small and latency matters */
  noDelay?: boolean;
  /** give up (ETIMEDOUT) when the connection isn't established in time */
  timeoutMs: number;
  /** abort the attempt (rejects with the signal's reason) */
  signal?: AbortSignal;
}

function argError(msg: string): TypeError {
  return Object.assign(new TypeError(msg), { code: 'ERR_INVALID_ARG_VALUE' });
}

/**
 * Connects to a peer with socket options applied before the SYN: the socket is
 * created by the addon, configured (MD5 key, TTL, minimum TTL, local address),
 * adopted by a net.Socket and connected through Node. Resolves once the TCP
 * connection is established; rejects with the connect error, ETIMEDOUT, or the
 * abort reason, and never leaks the descriptor.
 */
export function connectWithOptions(opts: ConnectOptions): Promise<net.Socket> {
  const host = opts.host.split('%')[0] ?? '';
  const family = net.isIP(host);
  if (family !== 4 && family !== 6) return Promise.reject(argError(`host must be a numeric IP address, got "${opts.host}"`));
  if (!Number.isInteger(opts.port) || opts.port < 1 || opts.port > 65535) {
    return Promise.reject(argError(`port must be an integer in [1, 65535], got ${String(opts.port)}`));
  }
  if (!(opts.timeoutMs > 0)) return Promise.reject(argError(`timeoutMs must be positive, got ${String(opts.timeoutMs)}`));
  if (opts.localAddress !== undefined && net.isIP(opts.localAddress.split('%')[0] ?? '') !== family) {
    return Promise.reject(argError(`localAddress "${opts.localAddress}" is not an IPv${family} address like host "${opts.host}"`));
  }
  if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);

  let fd: number;
  try {
    fd = createSocket(family);
  } catch (e) {
    return Promise.reject(e);
  }
  let socket: net.Socket;
  try {
    if (opts.md5Key !== undefined && opts.md5Key !== null) setMd5Key(fd, opts.host, opts.md5Key);
    if (opts.ttl !== undefined) setTtl(fd, opts.ttl);
    if (opts.minTtl !== undefined) setMinTtl(fd, opts.minTtl);
    if (opts.localAddress !== undefined) bindSocket(fd, opts.localAddress, opts.localPort ?? 0);
    // Node adopts an unconnected TCP descriptor and connects it itself.
    socket = new net.Socket({ fd, readable: true, writable: true });
  } catch (e) {
    try {
      closeSocket(fd);
    } catch {
      /* the original error matters more */
    }
    return Promise.reject(e);
  }
  socket.setNoDelay(opts.noDelay ?? true);

  return new Promise<net.Socket>((resolve, reject) => {
    const settle = (err?: unknown): void => {
      clearTimeout(timer);
      socket.off('connect', onConnect);
      socket.off('error', onError);
      opts.signal?.removeEventListener('abort', onAbort);
      if (err === undefined) resolve(socket);
      else {
        socket.destroy();
        reject(err);
      }
    };
    const onConnect = (): void => settle();
    const onError = (err: Error): void => settle(err);
    const onAbort = (): void => settle(opts.signal?.reason);
    const timer = setTimeout(() => {
      settle(
        Object.assign(new Error(`connect to ${opts.host} port ${opts.port} timed out after ${opts.timeoutMs} ms`), {
          code: 'ETIMEDOUT',
        }),
      );
    }, opts.timeoutMs);
    socket.once('connect', onConnect);
    socket.once('error', onError);
    opts.signal?.addEventListener('abort', onAbort, { once: true });
    socket.connect({ host: opts.host, port: opts.port });
  });
}
