/**
 * Each actor's responses by status class and their durations, counted in shared memory: the actor writes,
 * main reads (ctl status, the metrics endpoint) without a message and without asking the actor, so the
 * figures stay readable while an actor is stuck and after it has ended (the last ones are exact).
 *
 * One writer (the actor's thread) and plain stores: a reader may see a count one request behind, never a
 * torn one (8-byte aligned doubles). Counts are whole numbers held exactly by doubles up to 2^53.
 */

/** Upper bounds (seconds) of the duration histogram's buckets, the last one being +Inf. Long requests (long polls, streams) are this server's business, hence the buckets up to 5 minutes. */
export const DURATION_BUCKETS = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300] as const;

/** The status classes counted, and `aborted`: the connection ended before a response began. */
export const STATUS_CLASSES = ['1xx', '2xx', '3xx', '4xx', '5xx', 'aborted'] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

const ABORTED = STATUS_CLASSES.length - 1;
const FIRST_BUCKET = STATUS_CLASSES.length;
/** One slot per bucket and one for +Inf. */
const SUM = FIRST_BUCKET + DURATION_BUCKETS.length + 1;
const SLOTS = SUM + 1;

/** A snapshot of one actor's (or several actors' summed) counters. */
export interface RequestTotals {
  byStatusClass: Record<StatusClass, number>;
  /** Responses per duration bucket, not cumulative: `buckets[i]` counts those ≤ DURATION_BUCKETS[i] and above the bucket before; the last, those above every bound. */
  buckets: number[];
  durationSum: number;
  count: number;
}

/** The shared memory one actor's counters live in: allocated by main, written by the actor. */
export function requestMetricsBuffer(): SharedArrayBuffer {
  return new SharedArrayBuffer(SLOTS * Float64Array.BYTES_PER_ELEMENT);
}

/** The actor's side. */
export class RequestMetrics {
  private readonly slots: Float64Array;

  /** `onRecord`: also told of each response (the StatsD sender, when on). */
  constructor(
    buffer: SharedArrayBuffer,
    private readonly onRecord?: (status: number, seconds: number) => void,
  ) {
    this.slots = new Float64Array(buffer);
  }

  /** One response ended after `seconds`; `status` is 0 when the connection ended before a response began. */
  record(status: number, seconds: number): void {
    const statusClass = status >= 100 && status < 600 ? Math.floor(status / 100) - 1 : ABORTED;
    this.slots[statusClass]++;
    let bucket = 0;
    while (bucket < DURATION_BUCKETS.length && seconds > DURATION_BUCKETS[bucket]) bucket++;
    this.slots[FIRST_BUCKET + bucket]++;
    this.slots[SUM] += seconds;
    this.onRecord?.(status, seconds);
  }
}

/** Main's side: the counters in `buffer` now. */
export function readRequestMetrics(buffer: SharedArrayBuffer): RequestTotals {
  const slots = new Float64Array(buffer);
  const byStatusClass = Object.fromEntries(STATUS_CLASSES.map((name, index) => [name, slots[index]])) as Record<StatusClass, number>;
  const buckets = Array.from(slots.subarray(FIRST_BUCKET, SUM));
  return { byStatusClass, buckets, durationSum: slots[SUM], count: buckets.reduce((sum, n) => sum + n, 0) };
}

/** Nothing counted yet. */
export function emptyTotals(): RequestTotals {
  return readRequestMetrics(requestMetricsBuffer());
}

/** `into` plus `more`, in place. */
export function addTotals(into: RequestTotals, more: RequestTotals): RequestTotals {
  for (const name of STATUS_CLASSES) into.byStatusClass[name] += more.byStatusClass[name];
  more.buckets.forEach((n, index) => (into.buckets[index] += n));
  into.durationSum += more.durationSum;
  into.count += more.count;
  return into;
}
