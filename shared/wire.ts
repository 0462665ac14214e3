/**
 * The wire between the main thread and an actor: msgpack-encoded frames, batched per event-loop turn.
 *
 * Shared by both sides (the actors import it too). One batch is a flat msgpack array
 * `[type, connectionId, payload, type, connectionId, payload, ...]`, copied into an ArrayBuffer of exactly
 * its size and *transferred*: posting a Node Buffer would clone its whole backing slab (docs/design.md,
 * pitfall 2), and one post per turn instead of one per frame is what made the relay affordable.
 */
// msgpackr's pack and unpack entries without its stream classes and its native string extractor
// (msgpackr-extract): frames carry bytes and short strings, and the full entry costs each thread that
// loads it 1 MB more (docs/performance.md, Memory).
import { Packr, RESET_BUFFER_MODE } from 'msgpackr/pack';
import { Unpackr } from 'msgpackr/unpack';
import type { MessagePort } from 'node:worker_threads';
import type { ClientAddress } from './proxy-protocol.js';

/** Frame types. Both directions use the same numbers; the payload column says what each carries. */
export const Frame = {
  /** main → actor: a relayed connection begins. payload: {@link ConnectionInfo} */
  Open: 1,
  /** both ways: bytes of the connection. payload: Uint8Array */
  Data: 2,
  /** both ways: the sender's side is done writing (a FIN from the client, or `end()` from the app). */
  End: 3,
  /** both ways: the connection is over (client gone, or the actor destroyed it after flushing). */
  Close: 4,
  /** both ways: the receiver consumed this many bytes; the sender may send that many more. payload: number */
  Ack: 5,
  /** actor → main: a transferred socket closed, its slot is free again. */
  Released: 6,
  /** actor → main: one access log line (connection id 0). payload: string */
  AccessLog: 7,
} as const;
export type FrameType = (typeof Frame)[keyof typeof Frame];

/** What the actor needs to impersonate a `net.Socket` for a relayed connection. */
export interface ConnectionInfo {
  remoteAddress?: string;
  remotePort?: number;
  remoteFamily?: string;
  localAddress?: string;
  localPort?: number;
  /** The client reached us over TLS (terminated in main). */
  encrypted?: boolean;
  /** With TLS ended in main: what a TLSSocket would tell the app about the session. */
  tls?: RelayedTlsSession;
  /** The connection speaks HTTP/2: h2 chosen by ALPN, or cleartext HTTP/2 by prior knowledge. */
  http2?: true;
}

/** HTTP/2's connection preface (RFC 9113 §3.4): how a cleartext HTTP/2 connection by prior knowledge opens. */
export const HTTP2_PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const PREFACE_LINE = HTTP2_PREFACE.subarray(0, 'PRI * HTTP/2.0\r\n'.length);

/** Does `head` open with HTTP/2's preface? Its request line is enough: a gate may pass it on after that. */
export function opensWithHttp2Preface(head: Uint8Array): boolean {
  const length = Math.min(head.byteLength, HTTP2_PREFACE.byteLength);
  return length >= PREFACE_LINE.byteLength && HTTP2_PREFACE.subarray(0, length).equals(head.subarray(0, length));
}

/** What the app can ask a relayed connection's socket about its TLS session, as it would ask a TLSSocket. */
export interface RelayedTlsSession {
  authorized: boolean;
  authorizationError?: string;
  /** `getPeerCertificate()` (the client's own, without its issuer chain); absent when the client sent none. */
  peerCertificate?: Record<string, unknown>;
  protocol: string | null;
  alpnProtocol: string | false;
}

/**
 * Credit window per connection and direction: a sender stops once this many bytes are unacknowledged.
 * Measured (docs/design.md, pitfall 3): 256 KiB held a 64 MiB response to a stalled client to 0-5 MB of server growth.
 */
export const CREDIT_WINDOW = 256 * 1024;
/** A receiver acknowledges in steps of this size, so small exchanges cost no Ack frames at all. */
export const ACK_STEP = 64 * 1024;

export type FrameHandler = (type: FrameType, id: number, payload: unknown) => void;

/** A message on the data port that is not a batch: the transfer strategy posts sockets this way. */
export interface SocketHandoff {
  kind: 'socket';
  id: number;
  /** The `net.Socket` itself, moved (Node 24+)... */
  socket?: unknown;
  /** ...or a descriptor main dup(2)ed for this actor, to open a `net.Socket` on (source/handoff/descriptor-copy.ts). */
  fd?: number;
  /** What main read from the socket before handing it over (the request head, perhaps more): read it first. */
  head: Uint8Array;
  /** The client's real address, from a PROXY protocol header. */
  client?: ClientAddress;
  /**
   * Main counted the connection's first request as in flight (it read the head). False for a socket handed
   * over unread: the actor counts its requests as they come.
   */
  counted: boolean;
}

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false });

/**
 * Most data bytes in one batch. A turn that reads many uploads at once would otherwise build one batch of
 * many megabytes (200 trickled uploads: ~12 MB).
 */
export const MAX_BATCH_BYTES = 512 * 1024;

// The msgpack format bytes the batch encoder writes (msgpack spec: array 32, uint 32, bin 32, str 32, nil).
const ARRAY32 = 0xdd;
const UINT32 = 0xce;
const BIN32 = 0xc6;
const STR32 = 0xdb;
const NIL = 0xc0;

/** A payload that is neither bytes, a count, a string nor absent (an Open's ConnectionInfo): msgpackr's bytes for it. */
class Packed {
  constructor(readonly bytes: Uint8Array) {}
}

/** Encoded size of one payload, in bytes. */
function payloadSize(payload: unknown): number {
  if (payload === null) return 1;
  if (payload instanceof Uint8Array) return 5 + payload.byteLength;
  if (typeof payload === 'number') return 5;
  if (typeof payload === 'string') return 5 + Buffer.byteLength(payload);
  return (payload as Packed).bytes.byteLength;
}

/**
 * Collects frames for one port and posts them as one batch at the end of the current event-loop turn.
 * `setImmediate` runs after the poll phase, so everything that I/O callbacks produced in this turn
 * leaves in one message (or in several of at most MAX_BATCH_BYTES of data).
 *
 * The batch is msgpack (decoded by msgpackr, decodeBatch), but written here rather than by msgpackr's
 * pack(): a frame's shape is fixed, so its bytes go straight into the buffer that is transferred, in one
 * copy, without the generic packer's per-value dispatch and the copy out of its arena. `npm run
 * bench:wire` measures both paths with the decode (docs/performance.md): 0.3 µs less per frame in batches
 * of 4 responses, 0.6 µs in batches of 16, the same for a batch of one. msgpackr still packs the rare
 * payloads of other shapes.
 */
export class FrameBatcher {
  private frames: unknown[] = [];
  private dataBytes = 0;
  /** Encoded size of the frames' payloads so far. */
  private payloadBytes = 0;
  private scheduled = false;

  constructor(private readonly port: MessagePort) {}

  push(type: FrameType, id: number, payload: unknown = null): void {
    if (payload instanceof Uint8Array) {
      this.dataBytes += payload.byteLength;
    } else if (
      payload !== null &&
      typeof payload !== 'string' &&
      !(typeof payload === 'number' && payload >= 0 && payload <= 0xffffffff && Number.isInteger(payload))
    ) {
      // RESET_BUFFER_MODE: msgpackr reuses its arena from the start instead of packing after the last value
      // (and growing it 4x each time it fills); its result is a Buffer viewing that arena, so copy it out
      // (new Uint8Array copies; a Buffer's slice() would only view it).
      payload = new Packed(new Uint8Array(packr.pack(payload, RESET_BUFFER_MODE)));
    }
    this.frames.push(type, id, payload);
    this.payloadBytes += payloadSize(payload);
    if (this.dataBytes >= MAX_BATCH_BYTES) {
      this.flush();
      return;
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Posts what is pending now. Also called directly before a port is handed something out of band. */
  readonly flush = (): void => {
    this.scheduled = false;
    const { frames } = this;
    if (frames.length === 0) return;
    // 5 bytes of array header, then per frame a fixint type and a uint32 id (6 bytes) before its payload.
    // allocUnsafeSlow: an ArrayBuffer of exactly this size, ours to transfer (not a slice of Node's pool).
    const batch = Buffer.allocUnsafeSlow(5 + 6 * (frames.length / 3) + this.payloadBytes);
    batch[0] = ARRAY32;
    batch.writeUInt32BE(frames.length, 1);
    let at = 5;
    for (let i = 0; i < frames.length; i += 3) {
      batch[at] = frames[i] as number; // frame types are positive fixints
      batch[at + 1] = UINT32;
      batch.writeUInt32BE(frames[i + 1] as number, at + 2);
      at += 6;
      const payload = frames[i + 2];
      if (payload === null) {
        batch[at++] = NIL;
      } else if (payload instanceof Uint8Array) {
        batch[at] = BIN32;
        batch.writeUInt32BE(payload.byteLength, at + 1);
        batch.set(payload, at + 5);
        at += 5 + payload.byteLength;
      } else if (typeof payload === 'number') {
        batch[at] = UINT32;
        batch.writeUInt32BE(payload, at + 1);
        at += 5;
      } else if (typeof payload === 'string') {
        batch[at] = STR32;
        const length = batch.write(payload, at + 5, 'utf8');
        batch.writeUInt32BE(length, at + 1);
        at += 5 + length;
      } else {
        const { bytes } = payload as Packed;
        batch.set(bytes, at);
        at += bytes.byteLength;
      }
    }
    this.frames = [];
    this.dataBytes = 0;
    this.payloadBytes = 0;
    try {
      this.port.postMessage(batch.buffer, [batch.buffer]);
    } catch {
      // The port is closed: the other side is gone and its owner is already handling that.
    }
  };
}

/**
 * Decodes one batch, calling `handle` per frame. Data payloads are zero-copy views into `batch`, and Buffers:
 * streams convert any other Uint8Array written or pushed to them into a Buffer, an object per chunk.
 */
export function decodeBatch(batch: ArrayBuffer, handle: FrameHandler): void {
  const frames = unpackr.unpack(Buffer.from(batch)) as unknown[];
  for (let i = 0; i < frames.length; i += 3) {
    handle(frames[i] as FrameType, frames[i + 1] as number, frames[i + 2]);
  }
}

/** An actor's log line, sent to the main thread's logger (out of band: rare, and must not wait a turn). */
export interface LogMessage {
  kind: 'log';
  level: 'debug' | 'info' | 'warning' | 'error' | 'critical';
  message: string;
}

export function isLogMessage(message: unknown): message is LogMessage {
  return typeof message === 'object' && message !== null && (message as LogMessage).kind === 'log';
}

/**
 * One end of a channel between two actors, for the requests one forwards to the other
 * (actors/session-forwarding.ts). From an actor to main: `actorId` is the actor to pass it to; from main
 * to that actor: `actorId` is the actor that asked. The port travels in the message's transfer list.
 */
export interface PeerPortRequest {
  kind: 'peer-port';
  actorId: number;
  port: MessagePort;
}

export function isPeerPortRequest(message: unknown): message is PeerPortRequest {
  return typeof message === 'object' && message !== null && (message as PeerPortRequest).kind === 'peer-port';
}

/**
 * An actor's note to the main thread (out of band, rare): `retire` = it has served its `--max-requests` and
 * asks to be replaced and drained; `slot-freed` = it was at its `--worker-connections` and a request ended,
 * so connections queued in main may come (sent only then, not for every request); `peer-port` = pass this
 * channel's end to another actor.
 */
export type ActorNotice = { kind: 'retire' | 'slot-freed' } | PeerPortRequest;

export function isActorNotice(message: unknown): message is ActorNotice {
  if (typeof message !== 'object' || message === null) return false;
  const { kind } = message as ActorNotice;
  return kind === 'retire' || kind === 'slot-freed' || kind === 'peer-port';
}

export function isSocketHandoff(message: unknown): message is SocketHandoff {
  return typeof message === 'object' && message !== null && (message as SocketHandoff).kind === 'socket';
}
