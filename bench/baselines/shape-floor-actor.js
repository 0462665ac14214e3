// The task each thread of bench/baselines/thread-floor.js's `shape` floor runs in its piscina pool, for as
// long as the process lives (as an actor's one task does): the packages an actor loads, and an idle
// http.Server fed nothing.
import http from 'node:http';
import app from '../app.js';

await Promise.all([import('comlink'), import('msgpackr/pack'), import('msgpackr/unpack')]);

export default function holdThread() {
  http.createServer(app);
  return new Promise(() => {});
}
