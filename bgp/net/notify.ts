// systemd readiness notification (sd_notify(3)) for Type=notify services.
// Node core has no AF_UNIX datagram sockets, so the addon sends the datagram.
import { native } from './native.js';

/**
 * Sends `state` (e.g. "READY=1", "STATUS=…", "RELOADING=1", "STOPPING=1",
 * "WATCHDOG=1"; several may be joined with "\n") to $NOTIFY_SOCKET.
 * Returns false, doing nothing, when NOTIFY_SOCKET is unset or empty (not run
 * by systemd); true once the datagram is sent. Throws an errno-coded Error
 * when sending fails (e.g. ECONNREFUSED, ENOENT): the caller decides whether
 * a lost notification matters. An '@' address is an abstract socket.
 */
export function sdNotify(state: string, env: NodeJS.ProcessEnv = process.env): boolean {
  const socketPath = env.NOTIFY_SOCKET;
  if (socketPath === undefined || socketPath === '') return false;
  return native().sdNotify(socketPath, state);
}
