/**
 * `--header-timeout` and `--body-timeout` for relayed connections, after their first request: how long a
 * request may take to arrive, its head and then its whole body, before it is answered 408 and closed.
 *
 * The first head of a relayed connection is timed by the main thread's head gate (it is not handed over
 * before it is whole). For the heads and bodies after it, Node's server has the same deadlines
 * (`headersTimeout`, `requestTimeout`), but it keeps them by moving each connection through two sorted
 * native sets at every request's start and end, with a timestamp: 0.58 µs more CPU per request than this
 * module (`npm run bench:actor`, hello world, Node 20; docs/performance.md), paid by every request. Relay sockets see every byte
 * that arrives anyway, so here each one stamps when a request began to arrive, and a sweep once a second
 * (Node's own check interval is the same `connectionsCheckingInterval`) expires the late ones: per request,
 * a field or two.
 *
 * Transferred connections are real sockets that Node's server reads natively, with no byte passing our
 * code: they keep Node's own deadlines (startNodeDeadlines in request-pipeline.ts).
 *
 * One approximation: a head pipelined behind a request *with a body*, in the same bytes as the body's end,
 * is timed from the next bytes that arrive (the idle keep-alive timeout bounds the wait until then).
 */
import type { Server } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { RelaySocket } from './relay-socket.js';

/** How often late arrivals are looked for, as Node's connectionsCheckingInterval in request-pipeline.ts. */
export const SWEEP_MS = 1000;

export class ArrivalDeadlines {
  private readonly sockets = new Set<RelaySocket>();
  private sweeper: NodeJS.Timeout | null = null;

  constructor(
    private readonly server: Server,
    /** Milliseconds for a request head, from its first byte; 0 = none. */
    private readonly headerMs: number,
    /** Milliseconds for a whole request, head and body, from its first byte; 0 = none. */
    private readonly requestMs: number,
  ) {}

  watch(socket: RelaySocket): void {
    if (this.headerMs === 0 && this.requestMs === 0) return;
    this.sockets.add(socket);
    socket.once('close', () => this.sockets.delete(socket));
    if (!this.sweeper) {
      this.sweeper = setInterval(this.sweep, SWEEP_MS);
      this.sweeper.unref();
    }
  }

  stop(): void {
    if (this.sweeper) clearInterval(this.sweeper);
    this.sweeper = null;
  }

  private readonly sweep = (): void => {
    const now = performance.now();
    for (const socket of this.sockets) {
      const { arrival } = socket;
      if (arrival.startedAt === 0) continue;
      // Node's server lets go of the connection's parser when it is upgraded (WebSocket) or CONNECTed: no
      // HTTP request arrives on it any more.
      if (!(socket as RelaySocket & { parser?: unknown }).parser) continue;
      const body = arrival.body;
      if (body?.complete) {
        arrival.startedAt = 0;
        arrival.body = null;
        continue;
      }
      const elapsed = now - arrival.startedAt;
      if ((body === null && this.headerMs > 0 && elapsed >= this.headerMs) || (this.requestMs > 0 && elapsed >= this.requestMs)) this.expire(socket);
    }
  };

  /** As Node does at its deadlines: a clientError with its timeout code, which the server answers 408. */
  private expire(socket: RelaySocket): void {
    socket.arrival.startedAt = 0;
    const error = Object.assign(new Error('Request timeout'), { code: 'ERR_HTTP_REQUEST_TIMEOUT' });
    this.server.emit('clientError', error, socket);
  }
}
