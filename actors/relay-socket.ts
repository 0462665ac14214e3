/**
 * The actor's stand-in for a `net.Socket` whose real socket stays on the main thread (the `relay` hand-off).
 *
 * Node's `http.Server` and libraries such as `ws` accept any Duplex through `emit('connection')`, but they
 * also call socket methods (`setTimeout`, `setNoDelay`, `destroySoon`, ...) and read socket properties
 * (`remoteAddress`, `bytesWritten`, ...): docs/design.md, pitfall 4. This class provides them.
 *
 * Writes leave as Data frames. A write completes at once while fewer than CREDIT_WINDOW bytes are
 * unacknowledged by the main thread; past that its callback waits for Ack frames, so the stream's own
 * backpressure (`write()` returning false, `pipe` pausing) reaches the app when the client reads slowly.
 */
import { Duplex } from 'node:stream';
import type { IncomingMessage } from 'node:http';
import type { AddressInfo } from 'node:net';
import { performance } from 'node:perf_hooks';
import { CREDIT_WINDOW, type ConnectionInfo, type RelayedTlsSession } from '../shared/wire.js';

/** What a relay socket needs from the actor's side of the wire. */
export interface RelayOutlet {
  sendData(id: number, bytes: Uint8Array): void;
  sendEnd(id: number): void;
  sendClose(id: number): void;
}

type WriteCallback = (error?: Error | null) => void;

/** Where the request now arriving on a connection is (arrival-deadlines.ts reads it once a second). */
export interface ArrivingRequest {
  /** When its first byte came (performance.now() ms); 0 while no request is arriving. */
  startedAt: number;
  /** The request, once its head is whole and while its body is still coming; null before. */
  body: IncomingMessage | null;
}

const EMPTY = Buffer.alloc(0);

/** Do `bytes` end with CRLF CRLF, the end of a request head (and nothing of a next request after it)? */
function endsWithBlankLine(bytes: Uint8Array): boolean {
  const n = bytes.byteLength;
  return n >= 4 && bytes[n - 1] === 0x0a && bytes[n - 2] === 0x0d && bytes[n - 3] === 0x0a && bytes[n - 4] === 0x0d;
}

export class RelaySocket extends Duplex {
  readonly remoteAddress?: string;
  readonly remotePort?: number;
  readonly remoteFamily?: string;
  readonly localAddress?: string;
  readonly localPort?: number;
  /** Present (true) only for TLS connections, as on a real TLSSocket: apps test it for truthiness. */
  readonly encrypted?: true;
  /** With TLS ended in main: the session as a TLSSocket would describe it (authorized, the client's certificate). */
  readonly authorized?: boolean;
  readonly authorizationError?: string;
  readonly alpnProtocol?: string | false;
  private readonly session?: RelayedTlsSession;
  readonly connecting = false;
  bytesRead = 0;
  bytesWritten = 0;

  private unacknowledged = 0;
  private blockedWrite: WriteCallback | null = null;
  /** Set when the main thread reported the connection closed: nothing more may be sent to it. */
  private remoteClosed = false;
  private idleTimeout = 0;
  /**
   * The idle timer, armed lazily: activity only stamps `lastActive`, and the timer, when it fires, re-arms
   * itself for what is left of the timeout if there was activity meanwhile. A real socket refreshes its
   * timer on every read and write; doing that here (a timer-list insertion per delivery, per write and per
   * setTimeout pair Node's server makes per request) was a measurable part of the relay actor's cost.
   */
  private idleTimer: NodeJS.Timeout | null = null;
  /** When `idleTimer` fires (performance.now() ms: monotonic, unlike Date.now()). */
  private idleDue = 0;
  /** The last activity, or the last setTimeout() call (performance.now() ms). */
  private lastActive = 0;
  private demandWaiter: (() => void) | null = null;
  /** The request now arriving, for arrival-deadlines.ts. */
  readonly arrival: ArrivingRequest = { startedAt: 0, body: null };
  /** The bytes push() is handing to Node's parser now, if it is. */
  private delivering: Uint8Array | null = null;

  constructor(
    readonly connectionId: number,
    info: ConnectionInfo,
    private readonly outlet: RelayOutlet,
  ) {
    // allowHalfOpen: a client's FIN must not end our writable side; the HTTP server decides when to end.
    super({ allowHalfOpen: true, readableHighWaterMark: 64 * 1024, writableHighWaterMark: 64 * 1024 });
    this.remoteAddress = info.remoteAddress;
    this.remotePort = info.remotePort;
    this.remoteFamily = info.remoteFamily;
    this.localAddress = info.localAddress;
    this.localPort = info.localPort;
    if (info.encrypted) this.encrypted = true;
    if (info.tls) {
      this.session = info.tls;
      this.authorized = info.tls.authorized;
      if (info.tls.authorizationError) this.authorizationError = info.tls.authorizationError;
      this.alpnProtocol = info.tls.alpnProtocol;
    }
  }

  /** TLSSocket's: the client's certificate, `{}` when it sent none (only on TLS connections). */
  getPeerCertificate(): Record<string, unknown> {
    return this.session?.peerCertificate ?? {};
  }

  /** TLSSocket's: the TLS version of the session, e.g. `TLSv1.3`. */
  getProtocol(): string | null {
    return this.session?.protocol ?? null;
  }

  // ---- inbound: called by the connection's coroutine ----

  /** Hands bytes from the client to the reader. Returns false when the reader wants no more for now. */
  deliver(bytes: Uint8Array): boolean {
    this.bytesRead += bytes.byteLength;
    if (this.arrival.startedAt === 0 || this.idleTimeout !== 0) {
      const now = performance.now();
      if (this.arrival.startedAt === 0) this.arrival.startedAt = now;
      this.touchAt(now);
    }
    this.delivering = bytes; // Node's parser reads them within push(), calling headArrived() per head
    const wantsMore = this.push(bytes);
    this.delivering = null;
    return wantsMore;
  }

  /**
   * Node's parser has a whole request head (request-pipeline.ts): the request has arrived, or its body is what
   * arrives now. If the bytes being parsed go on past this head, the next request began with them.
   */
  headArrived(req: IncomingMessage, hasBody: boolean): void {
    const { arrival } = this;
    arrival.body = hasBody ? req : null;
    if (hasBody) return;
    const bytes = this.delivering;
    arrival.startedAt = bytes === null || endsWithBlankLine(bytes) ? 0 : performance.now();
  }

  /** Resolves when the reader asks for more (after `deliver` returned false). */
  demand(): Promise<void> {
    return new Promise((resolve) => {
      this.demandWaiter = resolve;
    });
  }

  /** The main thread acknowledged `bytes` of our output: release a blocked write if the window reopened. */
  credit(bytes: number): void {
    this.unacknowledged -= bytes;
    const blocked = this.blockedWrite;
    if (blocked && this.unacknowledged < CREDIT_WINDOW) {
      this.blockedWrite = null;
      blocked();
    }
  }

  /** The main thread reports the client gone: tear down without telling it back. */
  remoteClose(error?: Error): void {
    this.remoteClosed = true;
    this.destroy(error);
  }

  // ---- Duplex implementation ----

  override _read(): void {
    const waiter = this.demandWaiter;
    if (waiter) {
      this.demandWaiter = null;
      waiter();
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: WriteCallback): void {
    this.send(chunk, callback);
  }

  override _writev(chunks: Array<{ chunk: Buffer }>, callback: WriteCallback): void {
    // Node's ServerResponse corks the socket and ends with an empty write: a response is usually one
    // non-empty chunk plus an empty one, which needs no concatenation.
    let nonEmpty = 0;
    let last: Buffer | null = null;
    for (const { chunk } of chunks) {
      if (chunk.byteLength > 0) {
        nonEmpty++;
        last = chunk;
      }
    }
    if (nonEmpty <= 1) this.send(last ?? EMPTY, callback);
    else this.send(Buffer.concat(chunks.map((c) => c.chunk)), callback);
  }

  override _final(callback: WriteCallback): void {
    if (!this.remoteClosed) this.outlet.sendEnd(this.connectionId);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    this.clearIdleTimer();
    if (!this.remoteClosed) {
      this.remoteClosed = true;
      this.outlet.sendClose(this.connectionId);
    }
    const blocked = this.blockedWrite;
    this.blockedWrite = null;
    blocked?.(error ?? null);
    this.demandWaiter?.();
    this.demandWaiter = null;
    callback(error);
  }

  private send(bytes: Uint8Array, callback: WriteCallback): void {
    if (this.remoteClosed) {
      callback(Object.assign(new Error('This socket has been ended by the other party'), { code: 'EPIPE' }));
      return;
    }
    if (bytes.byteLength === 0) {
      callback(); // nothing to send: an empty write must not cost a frame
      return;
    }
    this.bytesWritten += bytes.byteLength;
    this.unacknowledged += bytes.byteLength;
    this.touch();
    this.outlet.sendData(this.connectionId, bytes);
    if (this.unacknowledged < CREDIT_WINDOW) callback();
    else this.blockedWrite = callback;
  }

  // ---- the parts of net.Socket that HTTP servers and WebSocket libraries call ----

  setTimeout(ms: number, callback?: () => void): this {
    this.idleTimeout = ms;
    if (callback) {
      if (ms === 0) this.removeListener('timeout', callback);
      else this.once('timeout', callback);
    }
    this.touch();
    return this;
  }

  setNoDelay(_noDelay?: boolean): this {
    return this; // the main thread set TCP_NODELAY on the real socket
  }

  setKeepAlive(_enable?: boolean, _initialDelay?: number): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  destroySoon(): void {
    if (this.writable) this.end();
    if (this.writableFinished) this.destroy();
    else this.once('finish', () => this.destroy());
  }

  address(): AddressInfo | Record<string, never> {
    if (this.localAddress === undefined || this.localPort === undefined) return {};
    return { address: this.localAddress, port: this.localPort, family: this.localAddress.includes(':') ? 'IPv6' : 'IPv4' };
  }

  get readyState(): string {
    if (this.destroyed) return 'closed';
    if (this.readable && this.writable) return 'open';
    return this.readable ? 'readOnly' : this.writable ? 'writeOnly' : 'closed';
  }

  get timeout(): number {
    return this.idleTimeout;
  }

  /** Activity restarts the idle timeout, as it does on a real socket. */
  private touch(): void {
    if (this.idleTimeout === 0) return; // switched off: a kept timer that fires meanwhile does nothing
    this.touchAt(performance.now());
  }

  private touchAt(now: number): void {
    if (this.idleTimeout === 0) return;
    this.lastActive = now;
    const due = now + this.idleTimeout;
    // A timer due by then fires early and re-arms for the rest; one due later (the timeout got shorter) is replaced.
    if (this.idleTimer && this.idleDue <= due) return;
    this.armIdleTimer(due, now);
  }

  private armIdleTimer(due: number, now: number): void {
    this.clearIdleTimer();
    this.idleDue = due;
    // Whole milliseconds: Node keeps one timer list per distinct duration.
    this.idleTimer = setTimeout(this.onIdle, Math.max(1, Math.ceil(due - now)));
    this.idleTimer.unref();
  }

  private readonly onIdle = (): void => {
    this.idleTimer = null;
    if (this.idleTimeout === 0 || this.destroyed) return;
    const now = performance.now();
    const due = this.lastActive + this.idleTimeout;
    if (due > now) this.armIdleTimer(due, now);
    else this.emit('timeout');
  };

  private clearIdleTimer(): void {
    if (this.idleTimer) {
      clearTimeout(this.idleTimer);
      this.idleTimer = null;
    }
  }
}
