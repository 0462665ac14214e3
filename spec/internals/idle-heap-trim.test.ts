/**
 * Without a server: when a thread trims its heap (shared/idle-heap-trim.ts). Full collections are watched
 * with a GC PerformanceObserver, so the test sees what V8 was asked to do, whatever its sizing heuristics
 * then made of it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { trimHeapWhenQuiet, type Quietness } from '../../shared/idle-heap-trim.js';
import { createLogger } from '../../shared/log.js';

/** Counts the full (mark-compact) collections that happen while `body` runs. */
async function majorCollectionsDuring(body: () => Promise<void>): Promise<number> {
  let count = 0;
  const observer = new PerformanceObserver((list) => {
    for (const entry of list.getEntries()) {
      if ((entry as PerformanceEntry & { detail?: { kind?: number } }).detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) count++;
    }
  });
  observer.observe({ entryTypes: ['gc'] });
  try {
    await body();
    await sleep(50); // the observer is told of entries asynchronously
  } finally {
    observer.disconnect();
  }
  return count;
}

const log = createLogger('error');

/**
 * Full collections while `quietnesses` are watched for `watchMs` (trim after `afterMs`), and for `thenMs`
 * more once their trimming was stopped.
 */
function collectionsWhileWatching(
  quietnesses: Quietness[],
  { afterMs, watchMs, thenMs = 0 }: { afterMs: number; watchMs: number; thenMs?: number },
): Promise<number> {
  return majorCollectionsDuring(async () => {
    const stops = quietnesses.map((quietness) => trimHeapWhenQuiet(quietness, afterMs, log));
    await sleep(watchMs);
    for (const stop of stops) stop();
    await sleep(thenMs);
  });
}

describe('idle heap trim', () => {
  it('collects once a quiet stretch has passed, then waits seconds (V8 must see a quiet window) before another', async () => {
    const quiet: Quietness = { served: () => 7, inFlight: () => 0 };
    const collections = await collectionsWhileWatching([quiet], { afterMs: 100, watchMs: 900 });
    assert.equal(collections, 1, `full collections in a quiet 900 ms (trim after 100 ms, retries 5 s apart)`);
  });

  it('does not collect while a request is in flight, nor while requests keep being answered', async () => {
    let served = 0;
    const busy: Quietness = { served: () => served, inFlight: () => 1 };
    const answering: Quietness = { served: () => served++, inFlight: () => 0 };
    assert.equal(await collectionsWhileWatching([busy, answering], { afterMs: 100, watchMs: 700 }), 0);
  });

  it('stops when told to', async () => {
    const quiet: Quietness = { served: () => 0, inFlight: () => 0 };
    assert.equal(await collectionsWhileWatching([quiet], { afterMs: 300, watchMs: 100, thenMs: 600 }), 0);
  });
});
