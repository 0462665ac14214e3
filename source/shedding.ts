/**
 * Pacing for work that an attack makes due all at once: a slow-header or slow-body attack opens its
 * connections together, so their deadlines pass together, and hundreds of refusals (a 408 written, a
 * request and a socket torn down) come due in the same second. They are done a slice at a time, and the
 * slices SLICE_GAP_MS apart, so that the threads doing them keep most of their time for ordinary requests.
 *
 * Why a gap and not just the next turn of the event loop (setImmediate): on 2 cores the three threads of
 * a relayed request (main, an actor, main again) compete with each other, and a thread that sheds
 * back to back keeps its core busy even when it yields between slices; the ordinary request then waits for
 * a core, not for the slice. Measured (docs/performance.md, session 11, attacker at idle priority, 8
 * alternating pairs against back-to-back slices): probe p99 median 10.5 ms against 16.2, lower in 7 of 8.
 */
export const SLICE_GAP_MS = 10;
