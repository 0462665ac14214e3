/**
 * Gives a quiet thread's memory back (`--heap-trim-after`). Loading an app grows V8's new space
 * (semi-spaces of 4 MB each and more, empty again once the boot's garbage is collected), and V8 shrinks it
 * only in a full collection that sees little allocation: its memory reducer runs such collections when a
 * heap goes quiet, but grainbows starts node without it (`--memory-reducer`: it pauses a thread in the middle
 * of the next burst's requests). So each thread does the same itself, where it knows it is safe: after a
 * stretch with no request in flight and none served. The full collections size the new space down, but an
 * idle thread keeps its pages until its next scavenge, which may be hours away: so a stretch ends with one,
 * and each thread gives back about 2 MB more (docs/performance.md, Memory). A full collection of an idle
 * actor's heap takes a few milliseconds, a scavenge of its empty new space less.
 */
import v8 from 'node:v8';
import vm from 'node:vm';
import type { Logger } from './log.js';

/** How often a thread looks whether it has been quiet; a quiet stretch is `afterMs` long at least. */
const CHECK_MS = 1000;
/**
 * Full collections per quiet stretch: the first `afterMs` into it, then RETRY_MS apart. V8 shrinks the new
 * space only when it measured little allocation over its last few seconds (a 5 s window): a first
 * collection soon after a burst (or a boot) can even grow it, and one a window later shrinks it.
 */
const ATTEMPTS = 3;
const RETRY_MS = 5000;

/** V8's gc(): a full collection, or with `{ type: 'minor' }` a scavenge of the new space. */
type Collect = (options?: { type: 'minor' }) => void;

export interface Quietness {
  /** Requests answered so far: a change means the thread was busy. */
  served(): number;
  /** Requests being answered now. */
  inFlight(): number;
}

let collect: Collect | undefined;

const megabytes = (bytes: number): string => (bytes / 1048576).toFixed(1);

/**
 * V8's `gc()`, fetched once without exposing it to the app: the flag is on only while a new, private
 * context is made (V8 installs `gc` in contexts made while it is set), then off again. The flag is the
 * process's, not the thread's: another thread fetching its own at the same moment may turn it off before
 * this context is made. Then there is no `gc` in it, and undefined says to try again at the next check.
 */
function collector(): Collect | undefined {
  if (!collect) {
    v8.setFlagsFromString('--expose-gc');
    try {
      const found: unknown = vm.runInNewContext('typeof gc === "function" ? gc : undefined');
      if (typeof found === 'function') collect = found as Collect;
    } finally {
      v8.setFlagsFromString('--no-expose-gc');
    }
  }
  return collect;
}

/**
 * Trims the heap after each quiet stretch of `afterMs`: ATTEMPTS full collections, `retryMs` apart while
 * the quiet lasts, and a scavenge after the last. Logs what the stretch gave back at debug level, after
 * `prefix`. Returns a stop function.
 */
export function trimHeapWhenQuiet(quietness: Quietness, afterMs: number, log: Logger, prefix = '', retryMs = RETRY_MS): () => void {
  let lastServed = quietness.served();
  let quietSince = Date.now();
  let attempts = 0;
  let before = 0;
  const timer = setInterval(
    () => {
      const served = quietness.served();
      if (served !== lastServed || quietness.inFlight() > 0) {
        lastServed = served;
        quietSince = Date.now();
        attempts = 0;
        return;
      }
      if (attempts >= ATTEMPTS || Date.now() - quietSince < afterMs + attempts * retryMs) return;
      const collectGarbage = collector();
      if (!collectGarbage) return; // another thread had the flag off: next check
      if (attempts === 0) before = v8.getHeapStatistics().total_heap_size;
      attempts++;
      collectGarbage();
      if (attempts === ATTEMPTS) collectGarbage({ type: 'minor' });
      const after = v8.getHeapStatistics().total_heap_size;
      if (attempts === ATTEMPTS && after < before) log.debug(`${prefix}heap trimmed after a quiet stretch, ${megabytes(before)} → ${megabytes(after)} MB`);
    },
    Math.min(CHECK_MS, afterMs),
  );
  timer.unref();
  return () => clearInterval(timer);
}
