/**
 * Trickled chunked uploads, which wrk cannot make: CONCURRENCY clients each POST 1 MiB as 16 chunks of
 * 64 KiB, one every 50 ms (a slow mobile link), again and again until DURATION seconds are over.
 * Prints one JSON line: { uploads, perSecond, p99Ms, errors }.
 * Usage: node dist/bench/trickle.js URL CONCURRENCY DURATION_S
 */
import net from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

const [target, concurrencyArg, durationArg] = process.argv.slice(2);
const url = new URL(target);
const concurrency = Number(concurrencyArg ?? 200);
const durationMs = Number(durationArg ?? 10) * 1000;
const CHUNK = Buffer.alloc(64 * 1024, 97);
const CHUNKS = 16;
const GAP_MS = 50;

const durations: number[] = [];
let errors = 0;

function uploadOnce(): Promise<void> {
  return new Promise((resolve) => {
    const started = Date.now();
    const socket = net.connect(Number(url.port), url.hostname);
    let response = '';
    let done = false;
    const finish = (ok: boolean) => {
      if (done) return;
      done = true;
      if (ok) durations.push(Date.now() - started);
      else errors++;
      socket.destroy();
      resolve();
    };
    socket.setTimeout(30_000, () => finish(false));
    socket.on('error', () => finish(false));
    socket.on('close', () => finish(false));
    socket.on('data', (chunk) => {
      response += chunk;
      if (/\r\n\r\n[\s\S]*\b1048576\b/.test(response)) finish(response.startsWith('HTTP/1.1 200'));
    });
    socket.on('connect', async () => {
      socket.write(`POST /upload HTTP/1.1\r\nHost: ${url.host}\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n`);
      for (let i = 0; i < CHUNKS && !done; i++) {
        socket.write(`${CHUNK.length.toString(16)}\r\n`);
        socket.write(CHUNK);
        socket.write('\r\n');
        await sleep(GAP_MS);
      }
      if (!done) socket.write('0\r\n\r\n');
    });
  });
}

const deadline = Date.now() + durationMs;
await Promise.all(
  Array.from({ length: concurrency }, async () => {
    while (Date.now() < deadline) await uploadOnce();
  }),
);
durations.sort((a, b) => a - b);
const p99 = durations.length ? durations[Math.min(durations.length - 1, Math.floor(durations.length * 0.99))] : 0;
process.stdout.write(`${JSON.stringify({ uploads: durations.length, perSecond: durations.length / (durationMs / 1000), p99Ms: p99, errors })}\n`);
