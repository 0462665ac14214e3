/**
 * The main thread's end of one actor's data port: hands connections over by either strategy, routes the
 * actor's frames to the right relayed connection, and counts the connections the actor holds.
 */
import type { Socket } from 'node:net';
import type { MessagePort, TransferListItem } from 'node:worker_threads';
import { RelayedConnection, type AbandonStatus } from './relay.js';
import { Frame, FrameBatcher, decodeBatch, isActorNotice, isLogMessage, type ActorNotice, type FrameType, type LogMessage, type SocketHandoff } from './wire.js';

export type HandoffStrategy = 'relay' | 'transfer';

export class ActorLink {
  private readonly batcher: FrameBatcher;
  private readonly relayed = new Map<number, RelayedConnection>();
  /** Ids of sockets now owned by the actor (transfer), until it reports them released. */
  private readonly transferred = new Set<number>();

  constructor(
    private readonly port: MessagePort,
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
    port.on('message', (message: unknown) => {
      if (message instanceof ArrayBuffer) decodeBatch(message, this.onFrame);
      else if (isLogMessage(message)) onLog(message);
      else if (isActorNotice(message)) onNotice(message);
    });
  }

  /** Connections this actor holds now. */
  get connectionCount(): number {
    return this.relayed.size + this.transferred.size;
  }

  handOff(strategy: HandoffStrategy, id: number, socket: Socket): void {
    if (strategy === 'transfer' && this.transfer(id, socket)) return;
    this.relay(id, socket);
  }

  /** The actor died or was stopped: answer or close everything it held on our side (relay.ts). */
  abandonAll(status: AbandonStatus): void {
    for (const connection of this.relayed.values()) connection.abandon(status);
    this.relayed.clear();
    this.transferred.clear(); // those sockets died with the actor's thread
    this.port.close();
  }

  private relay(id: number, socket: Socket): void {
    const connection = new RelayedConnection(id, socket, this.batcher, (closed) => {
      if (this.relayed.delete(closed.id)) this.onConnectionEnded();
    });
    this.relayed.set(id, connection);
    connection.start();
  }

  /** Moves the socket itself into the actor. False when the runtime refuses; the caller relays instead. */
  private transfer(id: number, socket: Socket): boolean {
    const message: SocketHandoff = { kind: 'socket', id, socket };
    try {
      this.port.postMessage(message, [socket as unknown as TransferListItem]);
    } catch {
      return false;
    }
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
