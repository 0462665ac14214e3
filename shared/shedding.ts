/**
 * Pacing for work that an attack makes due all at once: a slow-header or slow-body attack opens its
 * connections together, so their deadlines pass together, and hundreds of refusals (a 408 written, a
 * request and a socket torn down) come due in the same second. They are done a slice at a time, and the
 * slices SLICE_GAP_MS apart, so that the threads doing them keep most of their time for ordinary requests.
 *
 * Why a gap and not just the next turn of the event loop (setImmediate): on 2 cores the three threads of
 * a relayed request (main, an actor, main again) compete with each other, and a thread that sheds
 * back to back keeps its core busy even when it yields between slices; the ordinary request then waits for
 * a core, not for the slice. Measured with bench/slow-clients.ts (attacker at idle priority, 8
 * alternating pairs against back-to-back slices): probe p99 median 10.5 ms against 16.2, lower in 7 of 8.
 */
import { performance } from 'node:perf_hooks';

export const SLICE_GAP_MS = 10;

/**
 * Most time one slice takes before the rest waits for the next, on top of its count limit. A refusal's
 * cost varies: 8 slow-upload 408s took 1.3 ms on average but up to 5.8 ms under the attack (both actors
 * shed at once, so both cores were busy and every relayed request waited; bench/slow-clients.ts). Wall
 * time, not CPU time: a slice that loses its core to another thread also ends sooner.
 */
export const SLICE_BUDGET_MS = 1;

/** The clock of one slice: `spent()` is true once SLICE_BUDGET_MS have passed since it was made. */
export class SliceBudget {
  private readonly endsAt = performance.now() + SLICE_BUDGET_MS;

  spent(): boolean {
    return performance.now() >= this.endsAt;
  }
}
