/**
 * Where the relay hand-off's cost lies: grainbows relay against node:http and against the relay's floor
 * (baselines/relay-floor.js: the same per-turn msgpack batches between main and two worker threads, but
 * workers that answer without any HTTP machinery), in interleaved hello-world rounds, with CPU per request
 * split by thread: main, the worker/actor threads, and the runtime's helper threads (V8's GC workers).
 * Also times a bare thread crossing (postMessage there and back) and a loopback round trip on this
 * machine, the latencies every relayed request pays twice more than a node:http one.
 *
 *   npm run bench:floor                             # 5 rounds
 *   npm run bench:floor -- --rounds 3 --write docs/performance.md
 *
 * Needs wrk (apt-get install wrk). Each measured wrk run lasts 6 s.
 */
import { readFileSync, readdirSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, grainbows, runWrk, start, writeRegion, type Contender } from './harness.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const rounds = Number(option('--rounds') ?? 5);
const writeTo = option('--write');
const SECONDS = 6;
const CONNECTIONS = 64;

const CONTENDERS: Contender[] = [
  { name: 'node:http (1 thread)', command: (port) => ({ exe: process.execPath, argv: [path.join(ROOT, 'bench/baselines/node-http.js'), String(port)] }) },
  { name: 'relay floor (2 workers, no HTTP)', command: (port) => ({ exe: process.execPath, argv: [path.join(ROOT, 'bench/baselines/relay-floor.js'), String(port)] }) },
  { name: 'grainbows relay (2 actors)', command: grainbows(process.execPath, 'relay') },
];

/** CPU seconds of one process's threads, in three groups. */
interface ThreadCpu {
  main: number;
  /** Threads named like the main thread: created after it set its title, i.e. actors or workers. */
  named: number;
  /** Everything else: V8's platform threads (GC), libuv's, created before the title was set. */
  helpers: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

function threadCpu(pid: number): ThreadCpu {
  const cpu: ThreadCpu = { main: 0, named: 0, helpers: 0 };
  const mainName = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const seconds = (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      if (Number(tid) === pid) cpu.main += seconds;
      else if (name === mainName && mainName !== 'node') cpu.named += seconds;
      else cpu.helpers += seconds;
    } catch {
      // the thread ended meanwhile
    }
  }
  return cpu;
}

interface Round {
  rps: number;
  /** µs of CPU per request: all threads, then by group. */
  total: number;
  main: number;
  named: number;
  helpers: number;
}

async function measure(contender: Contender): Promise<Round> {
  const server = await start(contender);
  try {
    await runWrk(`${server.url}/`, 16, 2); // the same unrecorded warm-up for everyone (JIT)
    const pid = server.child.pid!;
    const before = threadCpu(pid);
    const { rps, errors } = await runWrk(`${server.url}/`, CONNECTIONS, SECONDS);
    const after = threadCpu(pid);
    const requests = rps * SECONDS;
    const per = (key: keyof ThreadCpu) => ((after[key] - before[key]) * 1e6) / requests;
    const round = { rps, main: per('main'), named: per('named'), helpers: per('helpers'), total: 0 };
    round.total = round.main + round.named + round.helpers;
    process.stderr.write(`${contender.name}: ${rps.toFixed(0)} req/s, ${errors} errors, ${round.total.toFixed(1)} µs CPU/req (main ${round.main.toFixed(1)}, workers ${round.named.toFixed(1)}, helpers ${round.helpers.toFixed(1)})\n`);
    return round;
  } finally {
    await server.stop();
    await sleep(500);
  }
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor((sorted.length - 1) / 2)];
};

/** Median, in µs, of `count` round trips made by `roundTrip`, `gapMs` apart (0: back to back). */
async function medianRoundTripUs(roundTrip: () => Promise<unknown>, gapMs: number, count = 200): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < count; i++) {
    const started = performance.now();
    await roundTrip();
    samples.push((performance.now() - started) * 1000);
    if (gapMs > 0) await sleep(gapMs);
  }
  return median(samples);
}

/** Round trips of a 64-byte transferred ArrayBuffer to a worker thread and back, `gapMs` apart: p50 in µs. */
async function threadRoundTripUs(gapMs: number): Promise<number> {
  const worker = new Worker("require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m, [m]))", { eval: true });
  await new Promise((resolve) => worker.once('online', resolve));
  const p50 = await medianRoundTripUs(
    () =>
      new Promise((resolve) => {
        worker.once('message', resolve);
        const bytes = new Uint8Array(64);
        worker.postMessage(bytes.buffer, [bytes.buffer]);
      }),
    gapMs,
  );
  await worker.terminate();
  return p50;
}

/** Round trips of a small message over a loopback TCP connection within this process, `gapMs` apart. */
async function loopbackRoundTripUs(gapMs: number): Promise<number> {
  const server = net.createServer({ noDelay: true }, (socket) => socket.on('data', (chunk) => socket.write(chunk)));
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = net.connect((server.address() as net.AddressInfo).port, '127.0.0.1');
  client.setNoDelay(true);
  await new Promise((resolve) => client.once('connect', resolve));
  const p50 = await medianRoundTripUs(
    () =>
      new Promise((resolve) => {
        client.once('data', resolve);
        client.write('ping');
      }),
    gapMs,
  );
  client.destroy();
  await new Promise((resolve) => server.close(resolve));
  return p50;
}

const results = new Map<string, Round[]>();
for (let round = 0; round < rounds; round++) {
  for (const contender of CONTENDERS) {
    const runs = results.get(contender.name) ?? [];
    runs.push(await measure(contender));
    results.set(contender.name, runs);
  }
}
const crossing = { idle: await threadRoundTripUs(20), busy: await threadRoundTripUs(0) };
const loopback = { idle: await loopbackRoundTripUs(20), busy: await loopbackRoundTripUs(0) };

const summary = CONTENDERS.map(({ name }) => {
  const runs = results.get(name)!;
  const pick = (key: keyof Round) => median(runs.map((run) => run[key]));
  return { name, rps: pick('rps'), total: pick('total'), main: pick('main'), named: pick('named'), helpers: pick('helpers'), all: runs.map((run) => run.rps) };
});
const baseline = summary[0];
const lines: string[] = [];
lines.push(`Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.versions.node}; wrk on the same cores. ${new Date().toISOString().slice(0, 10)}.`);
lines.push('');
lines.push(`| hello, ${CONNECTIONS} connections (median of ${rounds} interleaved rounds) | ok req/s | ÷ node:http | CPU µs/req, all threads | main thread | worker / actor threads | runtime helper threads |`);
lines.push('|---|---:|---:|---:|---:|---:|---:|');
for (const row of summary) {
  const ratio = row === baseline ? '' : `${(row.rps / baseline.rps).toFixed(2)}×`;
  const named = row.named > 0 ? row.named.toFixed(1) : '–';
  lines.push(`| ${row.name} | ${row.rps.toFixed(0)} | ${ratio} | ${row.total.toFixed(1)} | ${row.main.toFixed(1)} | ${named} | ${row.helpers.toFixed(1)} |`);
}
lines.push('');
lines.push(`All rounds: ${summary.map((row) => `${row.name} ${row.all.map((rps) => (rps / 1000).toFixed(1)).join('/')}k`).join('; ')}. CPU per request is each thread's user + system time over the requests served; "main thread" for node:http is all of its HTTP work, kernel included.`);
lines.push('');
lines.push('| on this machine, median of 200 | 20 ms apart | back to back |');
lines.push('|---|---:|---:|');
lines.push(`| thread crossing: postMessage to a worker thread and back | ${crossing.idle.toFixed(0)} µs | ${crossing.busy.toFixed(0)} µs |`);
lines.push(`| loopback TCP round trip within one process | ${loopback.idle.toFixed(0)} µs | ${loopback.busy.toFixed(0)} µs |`);
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
if (writeTo) writeRegion(writeTo, 'bench-floor', table);
