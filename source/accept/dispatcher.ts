/**
 * Where accepted connections go. With the relay hand-off (and TLS, and the PROXY protocol) first to the head
 * gate (head-gate.ts), which holds each one in the main thread until it has sent a whole request head; with
 * the transfer hand-off straight on, unread. Then to the actor with the fewest requests in flight, as long
 * as that is below `--worker-connections`. When every actor is full, arrivals wait in a queue here (unread,
 * or with just their head read) until a request somewhere ends.
 *
 * `--worker-connections` counts requests in flight, not connections: main counts one for each connection it
 * hands over after the gate (its first request) and the actor counts the rest, in memory both threads share
 * (actors/request-slots.ts). So an idle keep-alive connection, or one still trickling its head, costs no slot.
 */
import type { Socket } from 'node:net';
import { isTlsSocket } from '../../shared/tls-options.js';
import type { HandoffStrategy } from '../../shared/settings-values.js';
import type { ActorLink } from '../handoff/actor-link.js';
import { leastLoaded, sessionActor, type Placeable, type PlacementRule } from './placement.js';
import { HeadGate, type GatedConnection, type GateSettings } from '../../shared/head-gate.js';
import { actorOfSession } from '../../shared/affinity.js';
import { opensWithHttp2Preface } from '../../shared/wire.js';

const UNREAD = Buffer.alloc(0);

/** The actors connections go to (source/lifecycle/actor-pool.ts's ActorPool is one). */
export interface ActorDirectory {
  placeable(): ReadonlyArray<Placeable & { readonly link: ActorLink }>;
  /** 'slot-freed': a request ended somewhere, so a waiting connection may now fit. */
  on(event: 'slot-freed', listener: () => void): unknown;
}

export class Dispatcher {
  /** Arrivals waiting for a slot, oldest first (a Map keeps insertion order and removes in O(1)). */
  private readonly waiting = new Map<Socket, GatedConnection>();
  private readonly gate: HeadGate;
  private nextConnectionId = 1;
  /** Where the next placement scan starts: turned each time, so that ties spread across the actors. */
  private rotation = 0;
  /**
   * The transfer hand-off moves each plain TCP socket to an actor before reading a byte: Node (26.12 and
   * later) refuses to move a socket that has started reading, and an untouched socket keeps main out of the
   * data path altogether. The actor runs the same head gate on it (actors/connection-host.ts), at no
   * slot's cost, since slots count requests. Only a PROXY header, which main must read first, sends such
   * connections through main's gate (and so, on Node 26.12+, to the relay).
   */
  private readonly transfersUnread: boolean;
  /**
   * `stopping`: the server is stopping gracefully and every actor drains; a connection accepted before the
   * listeners closed may still arrive (a head finishing, a TLS handshake) and goes to a draining actor, which
   * answers it with `Connection: close`. `closed`: the actors are gone; late arrivals are closed.
   */
  private phase: 'open' | 'stopping' | 'closed' = 'open';

  constructor(
    private readonly pool: ActorDirectory,
    private readonly strategy: HandoffStrategy,
    private readonly requestsPerActor: number,
    gateSettings: GateSettings,
    /** `--sticky-sessions`: read each new connection's first head and follow the session it names (affinity.ts). */
    private readonly sticky = false,
    /** `--http2-cleartext prior-knowledge`: the peers whose plain connections may open with HTTP/2's preface. */
    private readonly h2cFrom: ((address: string | undefined) => boolean) | null = null,
  ) {
    this.gate = new HeadGate(gateSettings, this.dispatch);
    this.transfersUnread = strategy === 'transfer' && !gateSettings.proxyFrom && !sticky;
    pool.on('slot-freed', () => this.serveWaiting());
  }

  /** Connections whose head is read, waiting for a slot. */
  get queued(): number {
    return this.waiting.size;
  }

  /** Connections still sending their first request head. */
  get awaitingHead(): number {
    return this.gate.size;
  }

  readonly accept = (socket: Socket): void => {
    if (this.phase === 'closed') {
      socket.destroy();
      return;
    }
    socket.setNoDelay(true); // docs/design.md, pitfall 1: without it the relay crawls at Nagle + delayed-ACK pace
    // A TLS session lives in main (tls.ts): its clear bytes can only be relayed, through the gate; an HTTP/2
    // one has no HTTP/1.1 head to wait for, and goes straight on (its streams are counted in the actor).
    if (this.transfersUnread && !isTlsSocket(socket)) this.dispatch({ socket, head: UNREAD, unread: true });
    else if (isTlsSocket(socket) && socket.alpnProtocol === 'h2') this.dispatch({ socket, head: UNREAD, unread: false });
    else this.gate.admit(socket);
  };

  /** The server is stopping gracefully: draining actors take what still arrives. */
  stopping(): void {
    this.phase = 'stopping';
    this.gate.stop();
    this.serveWaiting();
  }

  /** The actors are gone: close queued connections and any that arrive later. */
  close(): void {
    this.phase = 'closed';
    this.dropWaiting();
  }

  /** Closes connections that never reached an actor. */
  dropWaiting(): void {
    this.gate.close();
    for (const socket of this.waiting.keys()) socket.destroy();
    this.waiting.clear();
  }

  private readonly dispatch = (arrival: GatedConnection): void => {
    if (this.phase === 'closed') {
      arrival.socket.destroy();
      return;
    }
    if (this.waiting.size === 0 && this.place(arrival)) return;
    const { socket } = arrival;
    this.waiting.set(socket, arrival);
    socket.once('close', () => this.waiting.delete(socket));
  };

  private place(arrival: GatedConnection): boolean {
    const rule: PlacementRule = { requestsPerActor: this.requestsPerActor, takeDraining: this.phase === 'stopping' };
    const actors = this.pool.placeable();
    const sessionOwner = this.sticky ? actorOfSession(arrival.head) : undefined;
    const owner = sessionOwner === undefined ? undefined : sessionActor(actors, sessionOwner, rule);
    if (owner === 'full') return false;
    // A session whose actor is gone goes anywhere: that actor's answer (socket.io: 400) starts a new one.
    this.rotation = (this.rotation + 1) % Math.max(actors.length, 1);
    const actor = owner ?? leastLoaded(actors, rule, this.rotation);
    if (!actor) return false;
    // A TLS session lives in main (tls.ts): its clear bytes can only be relayed.
    const strategy = isTlsSocket(arrival.socket) ? 'relay' : this.strategy;
    actor.link.handOff(strategy, this.nextConnectionId++, arrival, this.speaksHttp2(arrival));
    return true;
  }

  /** Does the connection speak HTTP/2: h2 by ALPN, or a trusted peer's cleartext HTTP/2 by prior knowledge? */
  private speaksHttp2({ socket, head }: GatedConnection): boolean {
    if (isTlsSocket(socket)) return socket.alpnProtocol === 'h2';
    return this.h2cFrom !== null && opensWithHttp2Preface(head) && this.h2cFrom(socket.remoteAddress);
  }

  private serveWaiting(): void {
    for (const [socket, arrival] of this.waiting) {
      if (socket.destroyed) {
        this.waiting.delete(socket);
        continue;
      }
      if (!this.place(arrival)) {
        // Only a connection that must wait for its session's actor lets the ones behind it pass.
        if (this.sticky && actorOfSession(arrival.head) !== undefined) continue;
        return;
      }
      this.waiting.delete(socket);
    }
  }
}
