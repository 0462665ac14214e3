/**
 * TLS ended in the actor: the raw TCP sockets main moves here unread pass a `tls.Server` of the actor's own,
 * which never listens and is fed them with `emit('connection')`, as a listening one feeds itself. So the
 * handshake, ALPN, SNI, client-certificate verification and the handshake timeout are Node's own, on the
 * thread that owns the socket, and main stays out of the data path (docs/design.md, TLS).
 */
import type { Socket } from 'node:net';
import tls from 'node:tls';
import { guardHandshakes, tlsServerOptions, type ActorTls } from '../shared/tls-options.js';
import type { Logger } from '../shared/log.js';

/** What a TLS server's socket keeps of the raw socket it wraps (Node sets `_parent`; no public name for it). */
type WrappingSocket = tls.TLSSocket & { _parent?: Socket | null };

export class TlsFront {
  private readonly server: tls.Server;
  /** Raw sockets whose handshake is under way, and the connection id each was handed over with. */
  private readonly handshaking = new Map<Socket, number>();

  constructor(
    serving: ActorTls,
    /** Receives each connection once its handshake is done, encrypted from then on. */
    onSecure: (socket: tls.TLSSocket, id: number) => void,
    log: Logger,
  ) {
    this.server = tls.createServer(tlsServerOptions(serving));
    guardHandshakes(this.server, (error) => log.debug(`TLS handshake failed: ${error.message}`));
    this.server.on('secureConnection', (socket: WrappingSocket) => {
      const raw = socket._parent;
      const id = raw ? this.handshaking.get(raw) : undefined;
      if (raw === undefined || raw === null || id === undefined) {
        socket.destroy(); // cannot happen while Node keeps _parent; a connection we cannot account for is not served
        return;
      }
      this.handshaking.delete(raw);
      onSecure(socket, id);
    });
  }

  /** Connections whose handshake is under way. */
  get size(): number {
    return this.handshaking.size;
  }

  /** Runs the TLS handshake on a socket main moved here unread. */
  admit(raw: Socket, id: number): void {
    this.handshaking.set(raw, id);
    raw.once('close', () => this.handshaking.delete(raw));
    this.server.emit('connection', raw);
  }
}
