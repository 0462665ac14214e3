/**
 * The wire between the main thread and an actor: msgpack-encoded frames, batched per event-loop turn.
 *
 * Shared by both sides (the actors import it too). One batch is a flat msgpack array
 * `[type, connectionId, payload, type, connectionId, payload, ...]`, copied into an ArrayBuffer of exactly
 * its size and *transferred*: posting a Node Buffer would clone its whole backing slab (handoff.md,
 * pitfall 2), and one post per turn instead of one per frame is what made the relay affordable.
 */
import { Packr, RESET_BUFFER_MODE, Unpackr } from 'msgpackr';
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
}

/**
 * Credit window per connection and direction: a sender stops once this many bytes are unacknowledged.
 * Measured in handoff.md: 256 KiB held a 64 MiB response to a stalled client to 0-5 MB of server growth.
 */
export const CREDIT_WINDOW = 256 * 1024;
/** A receiver acknowledges in steps of this size, so small exchanges cost no Ack frames at all. */
export const ACK_STEP = 64 * 1024;

export type FrameHandler = (type: FrameType, id: number, payload: unknown) => void;

/** A message on the data port that is not a batch: the transfer strategy posts sockets this way. */
export interface SocketHandoff {
  kind: 'socket';
  id: number;
  socket: unknown;
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
 * many megabytes (200 trickled uploads: ~12 MB), and msgpackr's arena keeps the size it once grew to.
 */
export const MAX_BATCH_BYTES = 512 * 1024;

/**
 * Collects frames for one port and posts them as one batch at the end of the current event-loop turn.
 * `setImmediate` runs after the poll phase, so everything that I/O callbacks produced in this turn
 * leaves in one message (or in several of at most MAX_BATCH_BYTES of data).
 */
export class FrameBatcher {
  private frames: unknown[] = [];
  private dataBytes = 0;
  private scheduled = false;

  constructor(private readonly port: MessagePort) {}

  push(type: FrameType, id: number, payload: unknown = null): void {
    this.frames.push(type, id, payload);
    if (payload instanceof Uint8Array) {
      this.dataBytes += payload.byteLength;
      if (this.dataBytes >= MAX_BATCH_BYTES) {
        this.flush();
        return;
      }
    }
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }

  /** Posts what is pending now. Also called directly before a port is handed something out of band. */
  readonly flush = (): void => {
    this.scheduled = false;
    if (this.frames.length === 0) return;
    // RESET_BUFFER_MODE: msgpackr reuses its arena from the start for every batch instead of packing after
    // the previous one and allocating a 4x larger arena each time one fills (megabytes of churn per
    // relayed response). The result is valid until the next pack, and we copy it out right away.
    const packed = packr.pack(this.frames, RESET_BUFFER_MODE);
    this.frames = [];
    this.dataBytes = 0;
    // `packed` is a view into msgpackr's arena: copy it out to a buffer we own and can transfer.
    const owned = new Uint8Array(packed.length);
    owned.set(packed);
    try {
      this.port.postMessage(owned.buffer, [owned.buffer]);
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
 * An actor's note to the main thread (out of band, rare): `retire` = it has served its `--max-requests` and
 * asks to be replaced and drained; `slot-freed` = it was at its `--worker-connections` and a request ended,
 * so connections queued in main may come (sent only then, not for every request).
 */
export interface ActorNotice {
  kind: 'retire' | 'slot-freed';
}

export function isActorNotice(message: unknown): message is ActorNotice {
  if (typeof message !== 'object' || message === null) return false;
  const { kind } = message as ActorNotice;
  return kind === 'retire' || kind === 'slot-freed';
}

export function isSocketHandoff(message: unknown): message is SocketHandoff {
  return typeof message === 'object' && message !== null && (message as SocketHandoff).kind === 'socket';
}
