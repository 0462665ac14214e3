// Floors for bench/memory.ts: one node process with N worker threads, each an idle http.createServer fed
// nothing (what a thread actor costs before any of grainbows' code), and a listener in main that keeps the
// connections it accepts. Prints its address the way grainbows does. The mode after N picks the floor:
//   (none)     plain worker_threads;
//   shape      the shape grainbows is built to: one piscina pool per thread (shape-floor-actor.js runs
//              in it, as an actor runs in its own), comlink and msgpackr loaded in main and in each thread;
//   grainbows  plain threads again, but main imports the modules grainbows' main thread runs and each
//              thread those of an actor, and serves with them nothing: what grainbows' code weighs,
//              before any of its state.
import http from 'node:http';
import { Worker, isMainThread, workerData } from 'node:worker_threads';
import app from '../app.js';

const mode = isMainThread ? (process.argv[4] ?? 'bare') : (workerData?.mode ?? 'bare');
if (mode === 'grainbows') await import(isMainThread ? '../../dist/source/cli/serve.js' : '../../dist/actors/actor.js');
if (mode === 'shape') await Promise.all([import('comlink'), import('msgpackr/pack'), import('msgpackr/unpack')]);

if (isMainThread) {
  const threads = Number(process.argv[3] ?? 4);
  if (mode === 'shape') {
    const { Piscina } = await import('piscina');
    for (let i = 0; i < threads; i++) {
      const pool = new Piscina({
        filename: new URL('./shape-floor-actor.js', import.meta.url).href,
        minThreads: 1,
        maxThreads: 1,
        atomics: 'disabled',
        idleTimeout: Number.MAX_SAFE_INTEGER,
        recordTiming: false,
      });
      void pool.run(null);
    }
  } else {
    for (let i = 0; i < threads; i++) new Worker(new URL(import.meta.url), { workerData: { mode } });
  }
  const server = http.createServer({ keepAliveTimeout: 75_000, requestTimeout: 0 }, app);
  server.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0), backlog: 4096 }, () => {
    process.stderr.write(`Listening at: http://127.0.0.1:${server.address().port} (${process.pid})\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
} else {
  http.createServer(app);
  setInterval(() => {}, 1 << 30);
}
