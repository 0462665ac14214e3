/**
 * Without a server: when a thread trims its heap (shared/idle-heap-trim.ts). Full collections are watched
 * with a GC PerformanceObserver, so the test sees what V8 was asked to do, whatever its sizing heuristics
 * then made of it.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { PerformanceObserver, constants, type PerformanceEntry } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { Worker } from 'node:worker_threads';
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

  it('ends a quiet stretch with a scavenge after its last full collection (the new space gives its pages back)', async () => {
    const forced: string[] = [];
    const observer = new PerformanceObserver((list) => {
      for (const entry of list.getEntries()) {
        const detail = (entry as PerformanceEntry & { detail?: { kind?: number; flags?: number } }).detail;
        // gc() calls are forced; a collection V8 chose itself is not, and is not the trim's.
        if (!detail?.flags || (detail.flags & constants.NODE_PERFORMANCE_GC_FLAGS_FORCED) === 0) continue;
        forced.push(detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR ? 'full' : detail.kind === constants.NODE_PERFORMANCE_GC_MINOR ? 'scavenge' : 'other');
      }
    });
    observer.observe({ entryTypes: ['gc'] });
    const stop = trimHeapWhenQuiet({ served: () => 0, inFlight: () => 0 }, 20, log, '', 40);
    try {
      await sleep(600);
    } finally {
      stop();
      await sleep(50);
      observer.disconnect();
    }
    assert.deepEqual(forced, ['full', 'full', 'full', 'scavenge']);
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

  it('threads that trim at the same moment each get their collection, none fails (the expose-gc flag is one for the process)', async () => {
    const THREADS = 8;
    const trimUrl = new URL('../../shared/idle-heap-trim.js', import.meta.url).href;
    const logUrl = new URL('../../shared/log.js', import.meta.url).href;
    // Each thread counts its own full collections; the trims are due at once, 20 ms after the start.
    const code = `
      const { parentPort } = require('node:worker_threads');
      const { PerformanceObserver, constants } = require('node:perf_hooks');
      (async () => {
        const { trimHeapWhenQuiet } = await import(${JSON.stringify(trimUrl)});
        const { createLogger } = await import(${JSON.stringify(logUrl)});
        let major = 0;
        new PerformanceObserver((list) => { for (const e of list.getEntries()) if (e.detail?.kind === constants.NODE_PERFORMANCE_GC_MAJOR) major++; }).observe({ entryTypes: ['gc'] });
        const stop = trimHeapWhenQuiet({ served: () => 0, inFlight: () => 0 }, 20, createLogger('error'));
        const deadline = Date.now() + 4000;
        while (major === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
        stop();
        parentPort.postMessage(major);
      })();`;
    const results = await Promise.all(
      Array.from(
        { length: THREADS },
        () =>
          new Promise<number | string>((resolve) => {
            const worker = new Worker(code, { eval: true });
            worker.once('message', (major: number) => resolve(major));
            worker.once('error', (error) => resolve(String(error)));
          }),
      ),
    );
    assert.deepEqual(
      results.map((result) => (typeof result === 'number' && result > 0 ? 'collected' : result)),
      Array(THREADS).fill('collected'),
    );
  });
});
