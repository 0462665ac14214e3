/**
 * The actor's count of requests in flight, in memory shared with the main thread, which reads it to pick an
 * actor and to hold `--worker-connections` (source/accept/dispatcher.ts). Counting requests rather than connections
 * is what lets an actor keep thousands of idle keep-alive connections while new requests still get in.
 *
 * Main adds one when it hands a connection over (the head of its first request has arrived), so a burst of
 * hand-offs cannot overshoot the cap before the actor has parsed them. The actor takes that count over
 * when the first request starts, adds one for each later request on the connection, and gives one back when
 * each response is done, or when the connection ends without its first request ever starting (a head the
 * parser refused, a client gone). A WebSocket (an upgrade as first request) keeps its count until it closes.
 *
 * Main can only hold back connections it has not handed over yet. A request arriving on a keep-alive
 * connection the actor already holds is counted too, and if `requestsPerActor` requests are running already it waits
 * here, in order, until one ends: so the app never runs more than `requestsPerActor` requests at once either way.
 */
import type { Duplex } from 'node:stream';

const COUNTED_BY_MAIN = Symbol('first request counted by the main thread');
type CountedSocket = Duplex & { [COUNTED_BY_MAIN]?: boolean };

/** One request's place: counted from take() to release(), running from start() (maybe after a wait). */
export interface SlotTicket {
  // Prefixed names: the ticket is the request's ServerResponse, where apps set properties of their own.
  slotRunning: boolean;
  slotRun?: () => void;
}

export class RequestSlots {
  private readonly inFlight: Int32Array;
  /** Requests whose app call has started and whose response is not done. */
  private running = 0;
  /** Requests counted but waiting for one of the running ones to end, oldest first. */
  private readonly waiting = new Set<SlotTicket>();

  constructor(
    shared: SharedArrayBuffer,
    /** `--worker-connections` (1 with `--use sync`): the requests main and this actor let run at once. */
    private readonly requestsPerActor: number,
    /** Called when a request ends while the actor was at its cap: main may have connections waiting. */
    private readonly onFreedAtCap: () => void,
  ) {
    this.inFlight = new Int32Array(shared);
    const recount = (socket: Duplex) => this.recount(socket);
    this.releaseOnClose = function (this: Duplex) {
      recount(this);
    };
  }

  /**
   * A counted connection that closes gives its first request's slot back. One function for every
   * connection (Node calls it with the socket as `this`), not a closure and a once-wrapper each.
   */
  private readonly releaseOnClose: (this: Duplex) => void;

  get count(): number {
    return Atomics.load(this.inFlight, 0);
  }

  /** A connection arrived from main, its first request counted there. */
  adopt(socket: Duplex): void {
    const counted = socket as CountedSocket;
    counted[COUNTED_BY_MAIN] = true;
    socket.on('close', this.releaseOnClose);
  }

  /**
   * The connection's first request, counted by main, is counted per HTTP/2 stream from now on: the
   * connection switched to HTTP/2 with it (`Upgrade: h2c`), and that stream is counted when it starts.
   */
  recount(socket: Duplex): void {
    const counted = socket as CountedSocket;
    if (!counted[COUNTED_BY_MAIN]) return;
    counted[COUNTED_BY_MAIN] = false;
    this.release({ slotRunning: false });
  }

  /**
   * A request's head arrived on `socket`; `ticket` (the request's response, in the actor) is its place.
   * Each call is matched by one release() when its response is done.
   */
  take(socket: Duplex, ticket: SlotTicket): void {
    const counted = socket as CountedSocket;
    if (counted[COUNTED_BY_MAIN]) counted[COUNTED_BY_MAIN] = false;
    else Atomics.add(this.inFlight, 0, 1);
    ticket.slotRunning = false;
  }

  /**
   * Runs `listener(req, res)` for the request now, or once fewer than `requestsPerActor` requests are running. Takes the
   * listener and its arguments rather than a closure: this runs for every request.
   */
  start<Req, Res>(ticket: SlotTicket, listener: (req: Req, res: Res) => void, req: Req, res: Res): void {
    if (this.running < this.requestsPerActor) {
      this.running++;
      ticket.slotRunning = true;
      listener(req, res);
      return;
    }
    ticket.slotRun = () => listener(req, res);
    this.waiting.add(ticket);
  }

  /** The request's response is done (or its connection died while it waited). */
  release(ticket: SlotTicket): void {
    if (ticket.slotRunning) this.running--;
    else this.waiting.delete(ticket);
    const before = Atomics.sub(this.inFlight, 0, 1);
    if (before >= this.requestsPerActor) this.onFreedAtCap();
    for (const next of this.waiting) {
      if (this.running >= this.requestsPerActor) break;
      this.waiting.delete(next);
      this.running++;
      next.slotRunning = true;
      next.slotRun?.();
    }
  }
}
