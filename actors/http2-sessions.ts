/**
 * HTTP/2 in the actor: Node's http2 server, which never listens, fed the connections whose TLS handshake chose
 * `h2` by ALPN (actors/connection-host.ts). Each stream is a request handed to the very handler HTTP/1.1
 * requests pass (request-pipeline.ts, `requestHandlerOf`): counted against `--worker-connections` and
 * `--max-requests`, held to the same head rules, limits and deadlines, logged with protocol HTTP/2.0.
 * The app gets Node's HTTP/2 compatibility request and response. All streams of a connection stay here.
 */
import http2 from 'node:http2';
import http, { type RequestListener } from 'node:http';
import type { LoadedApp } from './app-loader.js';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/log.js';
import type { Http2Limits } from '../shared/settings-values.js';
import type { RelaySocket } from './relay-socket.js';

/** An Express app: a listener carrying the prototypes it gives every request and response. */
type PrototypeSwapper = RequestListener & { response?: object };

function swapsPrototypes(listener: unknown): boolean {
  const response = (listener as PrototypeSwapper | undefined)?.response;
  return typeof response === 'object' && response !== null && Object.prototype.isPrototypeOf.call(http.ServerResponse.prototype, response);
}

/**
 * Why `app` cannot be served over HTTP/2, or undefined. Express (and NestJS on it) gives every request and
 * response a prototype of its own built on http.IncomingMessage and http.ServerResponse
 * (`Object.setPrototypeOf(res, app.response)`): HTTP/2's compatibility objects lose their own methods, and
 * the first request throws outside any handler, which ends the actor. Such an app is offered HTTP/1.1 only.
 */
export function http2Refusal(app: LoadedApp): string | undefined {
  const listeners = app.ownServer ? app.ownServer.listeners('request') : [app.listener];
  if (listeners.some(swapsPrototypes)) return 'it replaces the prototype of every request and response (Express, NestJS on Express)';
  return undefined;
}

const MAX_STREAM_ID = 2 ** 31 - 1;
/** The longest wait for the PING between the two GOAWAYs of a drain. */
const FINAL_GOAWAY_AFTER_MS = 1000;

/** The TLSSocket fields an app may read of its connection, as the relay's stand-in socket carries them. */
const SESSION_FIELDS = ['encrypted', 'authorized', 'authorizationError', 'alpnProtocol'] as const;

/**
 * Gives the socket Node wrapped around a relayed connection the relay's addresses and TLS session, so that
 * `req.socket.remoteAddress` (forwarded-header trust, the access log, the app) names the real peer. Node's
 * HTTP/2 socket proxy passes property writes to that socket; `_peername` and `_sockname` are where net.Socket
 * keeps the addresses it reports.
 */
function exposePeer(session: http2.ServerHttp2Session, relayed: RelaySocket): void {
  const socket = session.socket as unknown as Record<string, unknown>;
  socket._peername = { address: relayed.remoteAddress, port: relayed.remotePort, family: relayed.remoteFamily };
  socket._sockname = { address: relayed.localAddress, port: relayed.localPort };
  if (!relayed.encrypted) return;
  for (const field of SESSION_FIELDS) socket[field] = relayed[field];
  socket.getPeerCertificate = () => relayed.getPeerCertificate();
  socket.getProtocol = () => relayed.getProtocol();
}

/** Streams a client may reset in one second before its connection is ended (rapid reset, CVE-2023-44487). */
export const RESETS_PER_SECOND = 100;

/** How long a connection ended for abuse is still read (and discarded) for its client to see the GOAWAY. */
const LINGER_AFTER_GOAWAY_MS = 1000;

/**
 * Ends a connection whose client resets streams faster than RESETS_PER_SECOND, with GOAWAY
 * ENHANCE_YOUR_CALM, and closes it. Node has a guard of its own, later (about 1,000 resets), but after it
 * sends its GOAWAY it stops reading the connection without closing it: the socket sat in CLOSE-WAIT with
 * its descriptor and its slot in the actor for good (spec/http2.test.ts, rapid reset).
 *
 * The close lingers, as nginx's lingering_close does: the client is still sending, and a socket closed with
 * bytes unread makes the kernel send RST at once, discarding what is still in its send queue, GOAWAY
 * included. `session.close()` ends the socket after the GOAWAY and reads on until the client closes; the
 * socket is destroyed after LINGER_AFTER_GOAWAY_MS whatever the client does.
 */
function guardAgainstResets(session: http2.ServerHttp2Session, socket: Duplex, log: Logger): void {
  let resets = 0;
  let windowStart = performance.now();
  let ended = false;
  session.on('stream', (stream: http2.ServerHttp2Stream) => {
    stream.once('close', () => {
      if (stream.rstCode === http2.constants.NGHTTP2_NO_ERROR || ended) return;
      const now = performance.now();
      if (now - windowStart > 1000) {
        windowStart = now;
        resets = 0;
      }
      if (++resets <= RESETS_PER_SECOND) return;
      ended = true;
      log.warning(`HTTP/2: a client reset more than ${RESETS_PER_SECOND} streams in a second; its connection is closed`);
      session.goaway(http2.constants.NGHTTP2_ENHANCE_YOUR_CALM);
      session.close();
      setTimeout(() => socket.destroy(), LINGER_AFTER_GOAWAY_MS).unref();
    });
  });
}

export class Http2Sessions {
  private readonly server: http2.Http2Server;
  private readonly sessions = new Set<http2.ServerHttp2Session>();
  private draining = false;

  constructor(
    handle: RequestListener,
    limits: Http2Limits,
    keepAliveTimeoutMs: number,
    private readonly log: Logger,
  ) {
    this.server = http2.createServer(
      {
        settings: {
          maxConcurrentStreams: limits.maxConcurrentStreams,
          initialWindowSize: limits.initialWindowSize,
          maxFrameSize: limits.maxFrameSize,
          maxHeaderListSize: limits.maxHeaderListSize,
        },
      },
      handle as unknown as (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void,
    );
    this.server.on('session', (session: http2.ServerHttp2Session) => {
      this.sessions.add(session);
      session.once('close', () => this.sessions.delete(session));
      session.on('error', (error) => log.debug(`HTTP/2 session: ${error.message}`));
      // An idle connection is closed as an idle HTTP/1.1 keep-alive one is: GOAWAY, then the socket. One
      // Node has stopped serving without closing it is destroyed (see guardAgainstResets).
      if (keepAliveTimeoutMs > 0)
        session.setTimeout(keepAliveTimeoutMs, () => {
          session.close();
          setTimeout(() => session.destroy(), FINAL_GOAWAY_AFTER_MS).unref();
        });
    });
    this.server.on('sessionError', (error: Error) => log.debug(`HTTP/2 session: ${error.message}`));
    // A connection that arrives while the actor drains has its first stream served, then GOAWAY.
    this.server.on('stream', (stream: http2.ServerHttp2Stream) => {
      if (this.draining && !stream.session?.closed) stream.session?.close();
    });
  }

  /** Connections speaking HTTP/2 now. */
  get size(): number {
    return this.sessions.size;
  }

  /**
   * Starts HTTP/2 on a connection: a TLS socket whose ALPN chose h2, or a relayed one (`relayed`), which Node
   * wraps in a socket of its own that knows no addresses: the relay's stand-in lends it its own (exposePeer).
   */
  serve(socket: Duplex, relayed?: RelaySocket): void {
    let session: http2.ServerHttp2Session | undefined;
    const created = (made: http2.ServerHttp2Session) => (session = made);
    this.server.once('session', created);
    this.server.emit('connection', socket);
    this.server.off('session', created);
    if (!session) return;
    if (relayed) exposePeer(session, relayed);
    guardAgainstResets(session, socket, this.log);
    session.once('close', () => socket.destroy());
  }

  /**
   * Drains every connection as RFC 9113 §6.8 asks: a first GOAWAY naming the highest stream id stops the
   * client opening streams without refusing those already on their way; after a PING's round trip, the
   * final GOAWAY names the last stream taken, those under way finish and the connection closes after them.
   */
  goAway(): void {
    this.draining = true;
    for (const session of this.sessions) {
      if (session.closed || session.destroyed) continue;
      session.goaway(http2.constants.NGHTTP2_NO_ERROR, MAX_STREAM_ID);
      const close = () => {
        clearTimeout(timer);
        if (!session.closed && !session.destroyed) session.close();
      };
      // A peer that never answers the PING (gone, or stalled) gets the final GOAWAY anyway.
      const timer = setTimeout(close, FINAL_GOAWAY_AFTER_MS).unref();
      if (!session.ping(close)) close();
    }
  }
}
