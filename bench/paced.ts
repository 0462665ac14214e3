/**
 * An open-loop client for bench/tasks.ts: `rate` GETs a second on `connections` keep-alive connections for
 * `seconds`, each sent at its scheduled time whether or not earlier ones have been answered, and its latency
 * measured from that time (so a server that stalls is charged for the requests that queued behind the stall,
 * which a closed-loop client such as wrk would simply not send). Prints one JSON line.
 *
 *   node dist/bench/paced.js URL RATE CONNECTIONS SECONDS
 */
import { Pool } from 'undici';

const [url, rate, connections, seconds] = [process.argv[2], Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5])];
const target = new URL(url);
const pool = new Pool(target.origin, { connections, pipelining: 1, keepAliveTimeout: 60_000 });
const latencies: number[] = [];
let errors = 0;
const total = Math.round(rate * seconds);
const start = performance.now();
const pending: Promise<void>[] = [];

for (let i = 0; i < total; i++) {
  const due = start + (i * 1000) / rate;
  // Never early: a timer fires at or after its delay, so each request leaves at its time or later.
  const wait = due - performance.now();
  if (wait > 0) await new Promise((resolve) => setTimeout(resolve, Math.ceil(wait)));
  pending.push(
    pool.request({ path: target.pathname + target.search, method: 'GET' }).then(
      async (response) => {
        await response.body.dump();
        if (response.statusCode === 200) latencies.push(performance.now() - due);
        else errors++;
      },
      () => {
        errors++;
      },
    ),
  );
}
await Promise.all(pending);
await pool.close();
latencies.sort((a, b) => a - b);
const at = (q: number) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))] ?? NaN;
process.stdout.write(`${JSON.stringify({ sent: total, ok: latencies.length, errors, p50Ms: at(0.5), p99Ms: at(0.99) })}\n`);
