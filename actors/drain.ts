/**
 * Draining an actor (reload, resize, recycling, graceful stop): requests in flight finish, keep-alive ends.
 *
 * From the moment drain starts, every response carries `Connection: close` (request-pipeline.ts reads `active`
 * for new requests, the sweep marks those in flight whose head is not written yet), and a sweep closes each connection that is between requests. The sweep repeats because a response that
 * was already under way with keep-alive headers leaves its connection idle only when it ends. Upgraded
 * connections (WebSockets) are left to the graceful timeout, as gunicorn does.
 */
import type { Duplex } from 'node:stream';

/** The Node internals that say whether the HTTP server still owns a socket and is answering on it. */
interface HttpSocket extends Duplex {
  /** Set while Node's HTTP parser reads the socket; cleared on upgrade. */
  parser?: unknown;
  /** The response being written on it, if any. */
  _httpMessage?: { headersSent: boolean; shouldKeepAlive: boolean } | null;
  bytesRead?: number;
  [REQUESTS_SEEN]?: number;
}

export interface SocketSource {
  sockets(): Iterable<Duplex>;
  /** Sends GOAWAY on every HTTP/2 connection: its streams finish, no new ones start. */
  goAway?(): void;
}

const SWEEP_INTERVAL_MS = 50;
/**
 * A connection is closed once it has been seen idle this long. Closing the instant it goes idle races a
 * client that is already sending its next request on it (it would see a reset); a client that keeps
 * sending gets `Connection: close` on its next response instead, which is the clean way out.
 */
const IDLE_BEFORE_CLOSE_MS = 300;
/**
 * A connection that has not sent a whole request yet (just accepted, or its head still arriving, which on a
 * busy machine can take longer than the above) gets longer: its first request is served with
 * `Connection: close`. Only a connection silent this long is closed (a browser's speculative preconnect).
 */
const FRESH_IDLE_BEFORE_CLOSE_MS = 2000;

/** Set by request-pipeline.ts on a socket each time Node's server starts a request on it. */
export const REQUESTS_SEEN = Symbol('requests seen on this socket');
/** A closed idle connection whose client never acknowledges our FIN is cut after this long. */
const CLOSE_GRACE_MS = 2000;

export class DrainMode {
  active = false;
  private sweeper: NodeJS.Timeout | undefined;

  start(connections: SocketSource): void {
    if (this.active) return;
    this.active = true;
    connections.goAway?.();
    const idleSince = new WeakMap<Duplex, { at: number; bytesRead: number }>();
    const sweep = () => {
      const now = Date.now();
      for (const socket of connections.sockets()) {
        const http = socket as HttpSocket;
        if (!isIdle(http)) {
          closeAfterResponse(http);
          idleSince.delete(socket);
          continue;
        }
        // Bytes arriving mean a request is on its way: idle starts again from the last of them.
        const bytesRead = http.bytesRead ?? 0;
        const seen = idleSince.get(socket);
        if (seen === undefined || seen.bytesRead !== bytesRead) {
          idleSince.set(socket, { at: now, bytesRead });
          continue;
        }
        const wait = (http[REQUESTS_SEEN] ?? 0) > 0 ? IDLE_BEFORE_CLOSE_MS : FRESH_IDLE_BEFORE_CLOSE_MS;
        if (now - seen.at >= wait) close(socket);
      }
    };
    sweep();
    this.sweeper = setInterval(sweep, SWEEP_INTERVAL_MS);
  }

  stop(): void {
    clearInterval(this.sweeper);
  }
}

/** A response already under way whose head is not written yet ends its connection too. */
function closeAfterResponse(socket: HttpSocket): void {
  const response = socket._httpMessage;
  if (response && !response.headersSent) response.shouldKeepAlive = false;
}

/** Node's HTTP server still reads it (not upgraded), no response is under way, and it is still open. */
function isIdle(socket: HttpSocket): boolean {
  return Boolean(socket.parser) && !socket._httpMessage && !socket.writableEnded && !socket.destroyed;
}

function close(socket: Duplex): void {
  socket.end();
  setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
}
