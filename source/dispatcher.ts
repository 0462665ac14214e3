/**
 * Where accepted connections go: to the least-loaded actor that is below `--worker-connections`, or, when
 * every actor is full, into a queue in the main thread (unread, costing a socket and a few bytes) until a
 * slot frees. An actor is never given more than its cap.
 */
import type { Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import type { HandoffStrategy } from './actor-link.js';
import type { ActorPool } from './actor-pool.js';

export class Dispatcher {
  /** Sockets waiting for a slot, oldest first (a Set keeps insertion order and removes in O(1)). */
  private readonly waiting = new Set<Socket>();
  private nextConnectionId = 1;
  /**
   * `stopping`: the server is stopping gracefully and every actor drains; a connection accepted before the
   * listeners closed may still arrive (a TLS handshake finishing) and goes to a draining actor, which
   * answers it with `Connection: close`. `closed`: the actors are gone; late arrivals are closed.
   */
  private phase: 'open' | 'stopping' | 'closed' = 'open';

  constructor(
    private readonly pool: ActorPool,
    private readonly strategy: HandoffStrategy,
    private readonly connectionsPerActor: number,
  ) {
    pool.on('slot-freed', () => this.serveWaiting());
  }

  get queued(): number {
    return this.waiting.size;
  }

  readonly accept = (socket: Socket): void => {
    if (this.phase === 'closed') {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true); // handoff.md, pitfall 1: without it the relay crawls at Nagle + delayed-ACK pace
    if (this.waiting.size === 0 && this.handOff(socket)) return;
    this.waiting.add(socket);
    socket.once('close', () => this.waiting.delete(socket));
    socket.on('error', () => {});
  };

  /** The server is stopping gracefully: draining actors take what still arrives. */
  stopping(): void {
    this.phase = 'stopping';
    this.serveWaiting();
  }

  /** The actors are gone: close queued connections and any that arrive later. */
  close(): void {
    this.phase = 'closed';
    this.dropWaiting();
  }

  /** Closes queued connections that never reached an actor. */
  dropWaiting(): void {
    for (const socket of this.waiting) socket.destroy();
    this.waiting.clear();
  }

  private handOff(socket: Socket): boolean {
    const actor = this.pool.pick(this.connectionsPerActor, { takeDraining: this.phase === 'stopping' });
    if (!actor) return false;
    // A TLS session lives in main (tls.ts): its clear bytes can only be relayed.
    actor.link.handOff(socket instanceof TLSSocket ? 'relay' : this.strategy, this.nextConnectionId++, socket);
    return true;
  }

  private serveWaiting(): void {
    for (const socket of this.waiting) {
      if (socket.destroyed) {
        this.waiting.delete(socket);
        continue;
      }
      if (!this.handOff(socket)) return;
      this.waiting.delete(socket);
    }
  }
}
