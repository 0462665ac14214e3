/**
 * The main thread's half of one relayed connection: the real socket stays here, its bytes travel to the
 * actor as Data frames, the actor's answer comes back the same way.
 *
 * Flow control is a byte window each way (docs/design.md, pitfall 3):
 * - client → actor: after CREDIT_WINDOW unacknowledged bytes we stop reading the socket until the actor
 *   acknowledges, so a fast uploader to a slow app waits in the kernel, not in our memory;
 * - actor → client: we acknowledge the actor's bytes once the socket has taken them (no pending drain),
 *   so a client that stops reading stops the app's writes after one window.
 */
import type { Socket } from 'node:net';
import type { ClientAddress } from '../../shared/proxy-protocol.js';
import type { TLSSocket } from 'node:tls';
import { isTlsSocket } from '../../shared/tls-options.js';
import { ACK_STEP, CREDIT_WINDOW, Frame, type ConnectionInfo, type FrameBatcher, type RelayedTlsSession } from '../../shared/wire.js';

/** 502: the actor serving the request died. 503: it hung and was killed (`--timeout`). */
export type AbandonStatus = 502 | 503;
const ABANDON_REASON: Record<AbandonStatus, string> = { 502: 'Bad Gateway', 503: 'Service Unavailable' };

/** After the actor closes a connection, how long its last bytes may take to reach a slow client. */
const FLUSH_BEFORE_CLOSE_MS = 30_000;

/** Does this response start with `HTTP/1.x 101`? */
function isSwitchingProtocols(bytes: Uint8Array): boolean {
  // "HTTP/1.1 101": bytes 9..11 are the status digits.
  return bytes.byteLength > 12 && bytes[0] === 0x48 && bytes[9] === 0x31 && bytes[10] === 0x30 && bytes[11] === 0x31;
}

/** The session facts of a TLS connection ended here, for the actor's stand-in socket (actors/relay-socket.ts). */
function describeSession(socket: TLSSocket): RelayedTlsSession {
  const certificate = socket.getPeerCertificate(false) as unknown as Record<string, unknown> | null;
  return {
    authorized: socket.authorized,
    ...(socket.authorizationError ? { authorizationError: String(socket.authorizationError) } : {}),
    ...(certificate && Object.keys(certificate).length > 0 ? { peerCertificate: certificate } : {}),
    protocol: socket.getProtocol(),
    alpnProtocol: socket.alpnProtocol ?? false,
  };
}

export class RelayedConnection {
  /** Bytes sent to the actor that it has not acknowledged yet. */
  private inFlightToActor = 0;
  private pausedForCredit = false;
  /** Bytes from the actor that went into the socket and are not acknowledged back yet. */
  private owedToActor = 0;
  private waitingForDrain = false;
  /** The actor closed its side: do not tell it again when the socket closes. */
  private actorClosed = false;
  /**
   * The client sent bytes and the actor has not written anything since: a request is waiting for its
   * answer. If the actor dies now, main can still answer it (502/503) instead of just closing.
   */
  private awaitingAnswer = false;
  private upgraded = false;

  constructor(
    readonly id: number,
    readonly socket: Socket,
    private readonly batcher: FrameBatcher,
    private readonly onClosed: (connection: RelayedConnection) => void,
  ) {}

  /**
   * Opens the connection in the actor and starts reading. `head` holds bytes already read from the socket;
   * `client` is the real client when a PROXY protocol header named it; `ended`: the client's FIN came
   * with the head (read by the head gate, so the socket will not emit 'end' again).
   */
  start(head?: Uint8Array, client?: ClientAddress, ended = false, http2 = false): void {
    const { socket } = this;
    const info: ConnectionInfo = {
      remoteAddress: client?.address ?? socket.remoteAddress,
      remotePort: client?.port ?? socket.remotePort,
      remoteFamily: client?.family ?? socket.remoteFamily,
      localAddress: socket.localAddress,
      localPort: socket.localPort,
      ...(isTlsSocket(socket) ? { encrypted: true, tls: describeSession(socket) } : {}),
      ...(http2 ? { http2: true as const } : {}),
    };
    this.batcher.push(Frame.Open, this.id, info);
    if (head && head.byteLength > 0) this.forward(head);
    if (ended) this.batcher.push(Frame.End, this.id);
    socket.on('data', (chunk: Buffer) => this.forward(chunk));
    socket.on('end', () => this.batcher.push(Frame.End, this.id));
    socket.on('error', () => {}); // 'close' follows; a reset client is not our error
    socket.once('close', () => {
      if (!this.actorClosed) this.batcher.push(Frame.Close, this.id);
      this.onClosed(this);
    });
    socket.resume();
  }

  // ---- frames from the actor ----

  write(bytes: Uint8Array): void {
    const { socket } = this;
    if (socket.destroyed) return;
    if (this.awaitingAnswer) {
      this.awaitingAnswer = false;
      // After `101 Switching Protocols` the bytes are not HTTP any more: never answer 502 into them.
      if (!this.upgraded && isSwitchingProtocols(bytes)) this.upgraded = true;
    }
    socket.write(bytes);
    this.owedToActor += bytes.byteLength;
    if (socket.writableNeedDrain) {
      if (!this.waitingForDrain) {
        this.waitingForDrain = true;
        socket.once('drain', this.onDrain);
      }
    } else if (this.owedToActor >= ACK_STEP) {
      this.acknowledge();
    }
  }

  end(): void {
    if (!this.socket.destroyed) this.socket.end();
  }

  /** The actor is done with the connection: flush what it wrote, then close. */
  close(): void {
    this.actorClosed = true;
    const { socket } = this;
    if (socket.destroyed) return;
    if (socket.writableLength === 0) {
      socket.destroy();
      return;
    }
    socket.destroySoon();
    setTimeout(() => socket.destroy(), FLUSH_BEFORE_CLOSE_MS).unref();
  }

  /** The actor consumed `bytes` of what we sent. */
  credit(bytes: number): void {
    this.inFlightToActor -= bytes;
    if (this.pausedForCredit && this.inFlightToActor < CREDIT_WINDOW) {
      this.pausedForCredit = false;
      this.socket.resume();
    }
  }

  /**
   * The actor is gone (crashed, hung, stopped): nothing more will come from it. A request that got no byte
   * of an answer is answered `status` here; anything else (an idle connection, a half-sent response)
   * is closed, so the client never takes part of a response for all of it.
   */
  abandon(status: AbandonStatus): void {
    this.actorClosed = true;
    const { socket } = this;
    if (socket.destroyed) return;
    if (!this.awaitingAnswer || this.upgraded) {
      socket.destroy();
      return;
    }
    const body = `${ABANDON_REASON[status]}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${ABANDON_REASON[status]}\r\nContent-Type: text/plain\r\nContent-Length: ${body.length}\r\nConnection: close\r\n\r\n${body}`,
    );
    setTimeout(() => socket.destroy(), FLUSH_BEFORE_CLOSE_MS).unref();
  }

  private forward(chunk: Uint8Array): void {
    this.awaitingAnswer = true;
    this.batcher.push(Frame.Data, this.id, chunk);
    this.inFlightToActor += chunk.byteLength;
    if (this.inFlightToActor >= CREDIT_WINDOW && !this.pausedForCredit) {
      this.pausedForCredit = true;
      this.socket.pause();
    }
  }

  private readonly onDrain = (): void => {
    this.waitingForDrain = false;
    if (this.owedToActor > 0) this.acknowledge();
  };

  private acknowledge(): void {
    this.batcher.push(Frame.Ack, this.id, this.owedToActor);
    this.owedToActor = 0;
  }
}
