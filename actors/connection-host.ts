/**
 * The actor's end of its data port: turns frames from the main thread into connections of the actor's
 * `http.Server`, and runs each relayed connection's inbound side as a coroutine.
 */
import type { MessagePort } from 'node:worker_threads';
import type { IncomingMessage, Server } from 'node:http';
import { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import {
  ACK_STEP,
  Frame,
  FrameBatcher,
  decodeBatch,
  isSocketHandoff,
  opensWithHttp2Preface,
  type ConnectionInfo,
  type FrameType,
  type SocketHandoff,
} from '../shared/wire.js';
import { HeadGate, type GatedConnection } from '../shared/head-gate.js';
import { ArrivalDeadlines } from './arrival-deadlines.js';
import { startNodeDeadlines } from './request-pipeline.js';
import { RelaySocket, type RelayOutlet } from './relay-socket.js';
import type { RequestSlots } from './request-slots.js';
import { RequestNormalizer, attachNormalizer } from './request-normalizer.js';
import type { ParserCompat } from '../shared/actor-protocol.js';
import type { TlsFront } from './tls-front.js';
import type { Http2Sessions } from './http2-sessions.js';
import type { ActorTls } from '../shared/tls-options.js';
import type { Logger } from '../shared/log.js';
import { closeOnExecMarker, type CloseOnExec } from '../shared/close-on-exec.js';

/**
 * A relayed connection's coroutine: an async generator that main's frames resume with `next(bytes)`, the
 * client's bytes in order, and `next(null)` at the client's FIN. The generator's own request queue is the
 * connection's mailbox: while the coroutine waits for the reader (backpressure), later frames queue there
 * in order and resume it one by one.
 */
type Inbound = AsyncGenerator<void, void, Uint8Array | null>;

/** The actor's end of a relayed connection (main's end is source/handoff/relay.ts). */
interface RelayEnd {
  socket: RelaySocket;
  inbound: Inbound;
}

const noop = (): void => {};
/** What Node's server emits once a request head is whole (connection-host.ts noticeWholeHeads). */
const HEAD_EVENTS = new Set<string | symbol>(['request', 'checkContinue', 'checkExpectation', 'upgrade', 'connect']);

/** Does `bytes` hold a whole request head (an empty line)? */
function headIsComplete(bytes: Uint8Array): boolean {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).includes('\r\n\r\n');
}

export class ConnectionHost implements RelayOutlet {
  private readonly relayed = new Map<number, RelayEnd>();
  /** Transferred connections by id: the socket Node's server reads (the TLS socket, once its handshake is done). */
  private readonly transferred = new Map<number, Socket>();
  /** Transferred connections in Node's server whose first request head is not complete yet. */
  private readonly headPending = new Set<Socket>();
  /** Whether the server's emit is wrapped to see heads complete (noticeWholeHeads). */
  private noticingWholeHeads = false;
  private readonly batcher: FrameBatcher;
  /**
   * Transferred sockets arrive unread (Node will not move a socket that has been read from), so the head
   * gate that main runs for relayed connections runs here for them: the same 408 at the header deadline,
   * the same strict request line, before Node's server sees the connection.
   */
  private readonly gate: HeadGate;
  /** Header and body deadlines of relayed connections (transferred ones have Node's own). */
  private readonly arrivals: ArrivalDeadlines;
  /** With HTTPS ended here: the handshake every transferred socket passes before the head gate. */
  private readonly tlsFront: TlsFront | undefined;
  /** Loaded with the first moved socket (shared/close-on-exec.ts). */
  private closeOnExec: Promise<CloseOnExec | undefined> | undefined;
  /**
   * Main counts each relayed connection's first request as it hands it over (request-slots.ts). Connections
   * another actor forwards (session-forwarding.ts) pass no main: their first request is counted here.
   */
  firstRequestCountedByMain = true;

  constructor(
    port: MessagePort,
    private readonly server: Server,
    private readonly slots: RequestSlots,
    { headerTimeoutMs, bodyTimeoutMs }: { headerTimeoutMs: number; bodyTimeoutMs: number },
    /** The parser-compatibility settings; null when Node's parser alone judges requests. */
    private readonly compat: ParserCompat | null = null,
    /**
     * HTTPS ended in this actor (source/accept/tls.ts decides where), and where failed handshakes are told;
     * with the TlsFront class, which the actor loads only then (node:tls is 0.5 MB of each thread that loads it).
     */
    tls?: { settings: ActorTls; log: Logger; TlsFront: typeof TlsFront },
    /** With `--http-protocols` offering h2: the HTTP/2 server connections that chose it are given to. */
    private readonly http2?: Http2Sessions,
    /** `--http2-cleartext prior-knowledge`: whether a peer may open a plain connection with HTTP/2's preface. */
    private readonly h2cFrom?: (address: string | undefined) => boolean,
  ) {
    this.batcher = new FrameBatcher(port);
    this.arrivals = new ArrivalDeadlines(server, headerTimeoutMs, bodyTimeoutMs);
    this.gate = new HeadGate({ headerTimeoutMs, proxyFrom: null, releaseAfterRequestLine: true }, this.serveTransferred);
    // The header deadline starts once the handshake is done: the handshake has its own (the same length).
    this.tlsFront = tls ? new tls.TlsFront(tls.settings, this.secured, tls.log) : undefined;
    port.on('message', (message: unknown) => {
      if (message instanceof ArrayBuffer) decodeBatch(message, this.onFrame);
      else if (isSocketHandoff(message)) this.adopt(message);
    });
  }

  /** Connections this actor serves now, both strategies (not those still sending their first head). */
  get connectionCount(): number {
    return this.relayed.size + this.transferred.size - this.awaitingHead;
  }

  /** Transferred connections still in their TLS handshake or sending their first head. */
  get awaitingHead(): number {
    return (this.tlsFront?.size ?? 0) + this.gate.size + this.headPending.size;
  }

  /** Every connection's socket, both strategies (relay sockets stand in for the real ones). */
  *sockets(): IterableIterator<Duplex> {
    for (const { socket } of this.relayed.values()) yield socket;
    yield* this.transferred.values();
  }

  /** Ends every connection at once (the actor is stopping and graceful draining is over). */
  destroyAll(): void {
    this.gate.close();
    this.arrivals.stop();
    for (const { socket } of this.relayed.values()) socket.destroy();
    for (const socket of this.transferred.values()) socket.destroy();
    this.batcher.flush();
  }

  /** One access log line for the main thread's access log (batched with everything else). */
  sendAccessLine(line: string): void {
    this.batcher.push(Frame.AccessLog, 0, line);
  }

  // ---- RelayOutlet: what relay sockets send back ----

  sendData(id: number, bytes: Uint8Array): void {
    this.batcher.push(Frame.Data, id, bytes);
  }

  sendEnd(id: number): void {
    this.batcher.push(Frame.End, id);
  }

  sendClose(id: number): void {
    this.batcher.push(Frame.Close, id);
  }

  // ---- frames from the main thread ----

  private readonly onFrame = (type: FrameType, id: number, payload: unknown): void => {
    if (type === Frame.Open) {
      this.open(id, payload as ConnectionInfo);
      return;
    }
    const connection = this.relayed.get(id);
    if (!connection) return; // already closed on this side; late frames are harmless
    switch (type) {
      // The promises next() returns are not awaited: the coroutine never throws (runInbound).
      case Frame.Data:
        void connection.inbound.next(payload as Uint8Array);
        break;
      case Frame.End:
        void connection.inbound.next(null);
        break;
      case Frame.Close:
        connection.socket.remoteClose();
        void connection.inbound.return();
        break;
      case Frame.Ack:
        connection.socket.credit(payload as number);
        break;
    }
  };

  private open(id: number, info: ConnectionInfo): void {
    const socket = new RelaySocket(id, info, this);
    if (info.tls?.alpnProtocol === 'h2' || info.http2) {
      // Main offered h2 before it knew this actor's app cannot speak it: such a connection is closed.
      if (this.http2) this.openHttp2(id, socket);
      else {
        this.slots.release({ slotRunning: false }); // the request main counted for it
        socket.destroy();
      }
      return;
    }
    let normalizer: RequestNormalizer | undefined;
    if (this.compat) {
      normalizer = new RequestNormalizer(this.compat);
      attachNormalizer(socket, normalizer);
    }
    const connection: RelayEnd = { socket, inbound: this.runInbound(socket, normalizer) };
    this.relayed.set(id, connection);
    socket.once('close', () => {
      this.relayed.delete(id);
      void connection.inbound.return(); // frames still queued in it are dropped with the connection
    });
    if (this.firstRequestCountedByMain) this.slots.adopt(socket);
    this.arrivals.watch(socket);
    this.server.emit('connection', socket);
    void connection.inbound.next(); // runs the coroutine to its first wait for bytes
  }

  /**
   * A relayed connection whose TLS handshake in main chose h2. Main counted one request for it as it does
   * for every relayed connection (the head it held); HTTP/2 counts each stream as it starts instead, so that
   * count is given back at once. Its bytes go to the HTTP/2 session unparsed and unnormalized.
   */
  private openHttp2(id: number, socket: RelaySocket): void {
    const connection: RelayEnd = { socket, inbound: this.runInbound(socket, undefined) };
    this.relayed.set(id, connection);
    socket.once('close', () => {
      this.relayed.delete(id);
      void connection.inbound.return();
    });
    this.slots.release({ slotRunning: false });
    this.http2!.serve(socket, socket);
    void connection.inbound.next();
  }

  /**
   * The coroutine of one relayed connection: feeds the client's bytes to the HTTP parser (or, after an
   * upgrade, to whoever owns the socket), waits while the reader is full, and returns credit to the
   * main thread as bytes are taken so it can keep reading from the client.
   *
   * Each `yield` waits for the next frame. A frame that finds the coroutine waiting there resumes it at
   * once, within the frame's dispatch (an async generator runs synchronously from next() to its next
   * await), so a request costs one step of the generator rather than a wake-up per item and an iterator
   * result per step.
   */
  private async *runInbound(socket: RelaySocket, normalizer: RequestNormalizer | undefined): Inbound {
    let unacknowledged = 0;
    try {
      for (;;) {
        const bytes = yield;
        if (socket.destroyed) return;
        if (bytes === null) break; // the client's FIN
        const parsed = normalizer ? normalizer.feed(bytes) : bytes;
        if (parsed.byteLength > 0 && !socket.deliver(parsed)) await socket.demand();
        unacknowledged += bytes.byteLength;
        if (unacknowledged >= ACK_STEP) {
          this.batcher.push(Frame.Ack, socket.connectionId, unacknowledged);
          unacknowledged = 0;
        }
      }
      if (socket.destroyed) return;
      const rest = normalizer?.end();
      if (rest && rest.byteLength > 0) socket.deliver(rest);
      socket.push(null);
    } catch (error) {
      // The parser and the app's listeners run inside deliver(); whatever escapes them ends this
      // connection, never the coroutine's unawaited next() promises as unhandled rejections.
      socket.destroy(error as Error);
    }
  }

  /**
   * The `transfer` strategy: a real socket arrived; the actor owns it from now on. Usually main has read
   * nothing from it; where it read the head (a PROXY header came first), those bytes are fed to the parser
   * before anything the socket reads.
   */
  private adopt({ id, socket: moved, fd, head, client, counted }: SocketHandoff): void {
    // Moved whole (Node 24+), or a descriptor of our own that main copied for us (source/handoff/descriptor-copy.ts).
    // allowHalfOpen as main's listener had it: a client's FIN must not end our side before the answer is out.
    // Not during a TLS handshake, though: the TLS socket is half-open once secure (shared/tls-options.ts, guardHandshakes).
    const halfOpen = !this.tlsFront;
    const socket = moved ? (moved as Socket) : new Socket({ fd, readable: true, writable: true, allowHalfOpen: halfOpen });
    if (moved) this.markCloseOnExec(socket);
    socket.allowHalfOpen = halfOpen;
    startNodeDeadlines(this.server);
    socket.setNoDelay(true); // not carried across the transfer (docs/design.md, pitfall 1)
    if (client) {
      // The PROXY protocol named the real client: the app sees it where it looks for the peer.
      Object.defineProperties(socket, {
        remoteAddress: { value: client.address },
        remotePort: { value: client.port },
        remoteFamily: { value: client.family },
      });
    }
    this.transferred.set(id, socket);
    if (counted) this.slots.adopt(socket);
    // `on`, not `once`: a socket closes once, and once() adds a wrapper and its state to every connection.
    socket.on('close', () => {
      const served = this.transferred.get(id); // the TLS socket over this one, if any
      if (served) this.headPending.delete(served);
      this.transferred.delete(id);
      this.batcher.push(Frame.Released, id);
    });
    if (head.byteLength > 0) this.serveTransferred({ socket, head: Buffer.from(head.buffer, head.byteOffset, head.byteLength) });
    else if (this.tlsFront) this.tlsFront.admit(socket, id);
    else this.gate.admit(socket);
  }

  /**
   * Node gives a moved socket a descriptor without close-on-exec: without the flag, a process the app starts
   * would inherit the connection. Marked as soon as the C library is loaded (the first time, a moment after).
   */
  private markCloseOnExec(socket: Socket): void {
    const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    if (typeof fd !== 'number' || fd < 0) return; // Windows: a handle, not a descriptor
    this.closeOnExec ??= closeOnExecMarker();
    void this.closeOnExec.then((mark) => {
      if (!socket.destroyed) mark?.(fd);
    });
  }

  /** A transferred connection's TLS handshake is done: from now on it is the TLS socket that is served. */
  private readonly secured = (socket: TLSSocket, id: number): void => {
    if (!this.transferred.has(id)) {
      socket.destroy();
      return;
    }
    this.transferred.set(id, socket);
    if (socket.alpnProtocol === 'h2' && this.http2) {
      // HTTP/2 has no half-close at the connection's level: a client's FIN ends the connection.
      socket.allowHalfOpen = false;
      this.http2.serve(socket);
    } else this.gate.admit(socket);
  };

  /** A connection switched from HTTP/1.1 to HTTP/2 by `Upgrade: h2c` (h2c-upgrade.ts), its first stream in its bytes. */
  serveUpgraded(socket: Duplex): void {
    if (socket instanceof RelaySocket) this.http2?.serve(socket, socket);
    else {
      (socket as Socket).allowHalfOpen = false;
      this.http2?.serve(socket);
    }
  }

  /** Draining: every HTTP/2 connection gets GOAWAY (HTTP/1.1 ones are closed between requests, drain.ts). */
  goAway(): void {
    this.http2?.goAway();
  }

  /** A transferred connection's first head is here (read by main or by our gate): Node's server takes it. */
  private readonly serveTransferred = ({ socket, head, ended }: GatedConnection): void => {
    if (
      this.http2 &&
      this.h2cFrom &&
      !ended &&
      !(socket as Partial<TLSSocket>).encrypted &&
      opensWithHttp2Preface(head) &&
      this.h2cFrom(socket.remoteAddress)
    ) {
      // Cleartext HTTP/2 by prior knowledge from a trusted peer: the bytes read go back for the session to read.
      socket.allowHalfOpen = false;
      socket.unshift(head);
      this.http2.serve(socket);
      return;
    }
    if (!socket.destroyed && !headIsComplete(head)) {
      this.noticeWholeHeads();
      this.headPending.add(socket);
    }
    const normalizer = this.compat ? this.normalize(socket) : undefined;
    this.server.emit('connection', socket);
    // Node's server reads through 'data' and, where it can, straight from the handle, bypassing push(): a
    // 'data' listener of ours makes it read through the stream, so the normalizer sees every byte.
    if (normalizer) socket.on('data', noop);
    // The bytes read already come first either way, and a FIN read with them follows them.
    const first = normalizer ? normalizer.feed(head) : head;
    if (first.byteLength > 0) socket.emit('data', first);
    if (ended) {
      const rest = normalizer?.end();
      if (rest && rest.byteLength > 0) socket.emit('data', rest);
      socket.emit('end');
    } else socket.resume();
  };

  /**
   * A connection the gate released after its request line is still sending its first head until Node's
   * server has the whole of it: it emits 'request', 'checkContinue', 'checkExpectation', 'upgrade' or
   * 'connect'. Seen by wrapping emit, because listening would change what Node does: it only emits
   * 'upgrade', 'connect' and 'checkContinue' when someone listens for them. Wrapped only once a transferred
   * connection needs it: every emit of the server passes the wrapper, and relayed connections never do.
   */
  private noticeWholeHeads(): void {
    if (this.noticingWholeHeads) return;
    this.noticingWholeHeads = true;
    const { server } = this;
    const emit = server.emit;
    const pending = this.headPending;
    // Every emit of the server passes here, a request's included: forward `arguments` as they are, with no
    // rest array and spread per call (V8 forwards `apply(this, arguments)` without copying).
    server.emit = function (this: Server, event: string | symbol, first?: unknown): boolean {
      if (pending.size > 0 && HEAD_EVENTS.has(event)) pending.delete((first as IncomingMessage).socket as Socket);
      // eslint-disable-next-line prefer-rest-params
      return Reflect.apply(emit, this, arguments) as boolean;
    } as Server['emit'];
  }

  /** Puts a normalizer between a transferred socket and Node's parser: every chunk the socket reads passes it. */
  private normalize(socket: Socket): RequestNormalizer {
    const normalizer = new RequestNormalizer(this.compat!);
    attachNormalizer(socket, normalizer);
    const push = socket.push.bind(socket);
    socket.push = (chunk: unknown, encoding?: BufferEncoding) => {
      if (chunk instanceof Uint8Array) return push(normalizer.feed(chunk), encoding);
      if (chunk === null) {
        const rest = normalizer.end(); // the FIN: what the normalizer holds goes first
        if (rest.byteLength > 0) push(rest);
      }
      return push(chunk, encoding);
    };
    return normalizer;
  }
}
