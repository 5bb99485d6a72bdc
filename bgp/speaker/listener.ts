// The speaker's listening sockets: one per listen address (bindMode NodeIP on a dual-stack node listens on both node
// addresses), and the options that must be set on a listener rather than per connection: TCP MD5 keys per peer
// (RFC 2385) and TTL 255 for GTSM (RFC 5082 §3).
// Must not: look at accepted connections (connection.ts does).
import net from 'node:net';
import { fdOf, setListenerMd5, setTtl } from '../net/index.js';
import { isIpv4 } from '../wire/prefix.js';

/** The addresses to listen on ('::' when none is configured; none for null). */
export function listenHosts(l: string | readonly string[] | null | undefined): string[] {
  if (l === null) return [];
  if (l === undefined) return ['::'];
  return typeof l === 'string' ? [l] : l.length > 0 ? [...l] : ['::'];
}

export class Listener {
  private servers: net.Server[] = [];
  private ttlSet = false;

  constructor(private readonly log: (level: 'error', msg: string, peer?: string) => void) {}

  get listening(): boolean {
    return this.servers.length > 0;
  }

  /** The port actually listened on (useful with listenPort 0). */
  get port(): number {
    const a = this.servers[0]?.address();
    return a && typeof a === 'object' ? a.port : 0;
  }

  /** Listen on every host; on a failure, close what was opened and throw. */
  async listen(hosts: readonly string[], port: number, onSocket: (s: net.Socket) => void): Promise<void> {
    for (const host of hosts) {
      const server = net.createServer({ noDelay: true, pauseOnConnect: false }, onSocket);
      server.on('error', (e) => this.log('error', `listener: ${e.message}`));
      try {
        await new Promise<void>((resolve, reject) => {
          server.once('error', reject);
          // With several addresses they all take the port of the first (listenPort 0: whatever it got).
          server.listen({ host, port: this.servers.length > 0 ? this.port : port }, () => {
            server.off('error', reject);
            resolve();
          });
        });
      } catch (e) {
        for (const x of this.servers) x.close();
        this.servers = [];
        throw e;
      }
      this.servers.push(server);
    }
  }

  /** Close every listener; resolves once they are closed. */
  async close(): Promise<void> {
    const servers = this.servers;
    this.servers = [];
    await Promise.all(servers.map((server) => new Promise<void>((r) => server.close(() => r()))));
  }

  /** Set (key) or remove (null) a peer's TCP MD5 key on the listeners of its family. */
  setMd5(peerAddress: string, key: Buffer | string | null): void {
    for (const server of this.servers) {
      // A listener on a specific address of the other family never sees this peer.
      const a = server.address();
      if (a && typeof a === 'object' && a.address !== '::' && a.address !== '0.0.0.0' && isIpv4(a.address) !== isIpv4(peerAddress)) continue;
      try {
        setListenerMd5(server, peerAddress, key);
      } catch (e) {
        this.log('error', `TCP MD5 key on the listener: ${(e as Error).message}`, peerAddress);
      }
    }
  }

  /**
   * RFC 5082 §3: a GTSM peer checks the TTL of every segment, the SYN-ACK
   * included, and that one is sent from the listener's settings before any
   * per-connection option can be set. So the listener sends with TTL 255 once
   * any peer uses GTSM (harmless for the others). The minimum TTL is per
   * connection, set on accept: a listener-wide one would shut out peers
   * without GTSM.
   */
  useGtsm(ttlSecurity: number | undefined): void {
    if (this.servers.length === 0 || ttlSecurity === undefined || this.ttlSet) return;
    try {
      for (const server of this.servers) setTtl(fdOf(server), 255);
      this.ttlSet = true;
    } catch (e) {
      this.log('error', `TTL 255 on the listener: ${(e as Error).message}`);
    }
  }
}
