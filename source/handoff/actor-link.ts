/**
 * The main thread's end of one actor's data port: hands connections over by either strategy, routes the
 * actor's frames to the right relayed connection, and counts the connections the actor holds.
 */
import type { HandoffStrategy } from '../../shared/settings-values.js';
import type { MessagePort } from 'node:worker_threads';
import { postSocket } from './strategy.js';
import { RelayedConnection, type AbandonStatus } from './relay.js';
import type { GatedConnection } from '../../shared/head-gate.js';
import {
  Frame,
  FrameBatcher,
  decodeBatch,
  isActorNotice,
  isLogMessage,
  type ActorNotice,
  type FrameType,
  type LogMessage,
  type PeerPortRequest,
} from '../../shared/wire.js';

export class ActorLink {
  private readonly batcher: FrameBatcher;
  private readonly relayed = new Map<number, RelayedConnection>();
  /** Ids of sockets now owned by the actor (transfer), until it reports them released. */
  private readonly transferred = new Set<number>();

  /** Requests in flight in the actor, shared with it (actors/request-slots.ts). */
  private readonly inFlight: Int32Array;

  constructor(
    private readonly port: MessagePort,
    /** The shared counter of requests in flight. */
    requestSlots: SharedArrayBuffer,
    /** Called whenever a connection of this actor ends, so its slot can be reused. */
    private readonly onConnectionEnded: () => void,
    /** Receives the actor's log lines. */
    onLog: (line: LogMessage) => void,
    /** Receives the actor's access log lines. */
    private readonly onAccessLine: (line: string) => void,
    /** Receives the actor's lifecycle notices (it reached --max-requests). */
    onNotice: (notice: ActorNotice) => void,
  ) {
    this.batcher = new FrameBatcher(port);
    this.inFlight = new Int32Array(requestSlots);
    port.on('message', (message: unknown) => {
      if (message instanceof ArrayBuffer) decodeBatch(message, this.onFrame);
      else if (isLogMessage(message)) onLog(message);
      else if (isActorNotice(message)) {
        if (message.kind === 'slot-freed') this.onConnectionEnded();
        else onNotice(message);
      }
    });
  }

  /** Passes the actor one end of a channel another actor opened to it (actors/session-forwarding.ts). */
  introducePeer(fromActor: number, port: MessagePort): void {
    const offer: PeerPortRequest = { kind: 'peer-port', actorId: fromActor, port };
    this.port.postMessage(offer, [port]);
  }

  /** Connections this actor holds now. */
  get connectionCount(): number {
    return this.relayed.size + this.transferred.size;
  }

  /** Requests the actor is answering now (what `--worker-connections` limits). */
  get requestsInFlight(): number {
    return Atomics.load(this.inFlight, 0);
  }

  /**
   * Hands over a connection. One whose head has arrived (through the gate) counts its first request as in
   * flight from now on; an unread one counts nothing until the actor parses a request on it.
   */
  handOff(strategy: HandoffStrategy, id: number, arrival: GatedConnection, http2 = false): void {
    if (arrival.unread && this.transfer(id, arrival, false)) return;
    Atomics.add(this.inFlight, 0, 1);
    // A client that half-closed at the gate is relayed: its FIN was read here and must be passed on as a frame.
    // (Node 26.12 and later refuse to move a socket that has been read from, so this usually relays too.)
    if (strategy === 'transfer' && !arrival.unread && !arrival.ended && this.transfer(id, arrival, true)) return;
    this.relay(id, arrival, http2);
  }

  /** The actor died or was stopped: answer or close everything it held on our side (relay.ts). */
  abandonAll(status: AbandonStatus): void {
    for (const connection of this.relayed.values()) connection.abandon(status);
    this.relayed.clear();
    this.transferred.clear(); // those sockets died with the actor's thread
    this.port.close();
  }

  /** `http2`: the actor serves it as HTTP/2 (shared/wire.ts, ConnectionInfo). */
  private relay(id: number, { socket, head, client, ended }: GatedConnection, http2: boolean): void {
    const connection = new RelayedConnection(id, socket, this.batcher, (closed) => {
      if (this.relayed.delete(closed.id)) this.onConnectionEnded();
    });
    this.relayed.set(id, connection);
    connection.start(head, client, ended, http2);
  }

  /** Moves the socket itself into the actor. False when the runtime refuses; the caller relays instead. */
  private transfer(id: number, { socket, head, client }: GatedConnection, counted: boolean): boolean {
    // A copy of just these bytes, transferred: posting the Buffer would clone its whole pool slab (pitfall 2).
    const owned = new Uint8Array(head);
    if (!postSocket(this.port, { kind: 'socket', id, head: owned, counted, ...(client ? { client } : {}) }, socket)) return false;
    this.transferred.add(id);
    return true;
  }

  private readonly onFrame = (type: FrameType, id: number, payload: unknown): void => {
    if (type === Frame.Released) {
      if (this.transferred.delete(id)) this.onConnectionEnded();
      return;
    }
    if (type === Frame.AccessLog) {
      this.onAccessLine(payload as string);
      return;
    }
    const connection = this.relayed.get(id);
    if (!connection) return;
    switch (type) {
      case Frame.Data:
        connection.write(payload as Uint8Array);
        break;
      case Frame.End:
        connection.end();
        break;
      case Frame.Close:
        connection.close();
        break;
      case Frame.Ack:
        connection.credit(payload as number);
        break;
    }
  };
}
