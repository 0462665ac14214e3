/**
 * Where each hand-off's cost lies, against the runtime's own floor for that hand-off, in interleaved
 * hello-world rounds with CPU per request split by thread.
 * - relay (Node 20): node:http, the relay's two floors (baselines/relay-floor.js: the same per-turn msgpack
 *   batches between main and two worker threads as grainbows, to workers that answer canned bytes without
 *   any HTTP machinery, or that run a plain node:http server over a bare Duplex, none of grainbows' code)
 *   and grainbows relay;
 * - transfer (Node 26, when .ci/cache/node26 or NODE26 is there): node:cluster, the transfer floor
 *   (baselines/transfer-floor.js: sockets moved into two worker threads that run a plain node:http server,
 *   no grainbows code) and grainbows transfer.
 * Each row also says what the rest of the machine (wrk) spent per request and the rate the server could
 * reach on these cores at its measured cost ("CPU-bound ceiling"), which is what decides the ratios here.
 * Then it times a bare thread crossing (postMessage there and back) and a loopback round trip on this
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
import { ROOT, grainbows, node26, runWrk, start, treeCpuSeconds, writeRegion, type Contender } from './harness.js';

const args = process.argv.slice(2);
const option = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);
const rounds = Number(option('--rounds') ?? 5);
const writeTo = option('--write');
const SECONDS = 6;
const CONNECTIONS = 64;

const baseline = (name: string, exe: string, file: string, ...extra: string[]): Contender => ({
  name,
  command: (port) => ({ exe, argv: [path.join(ROOT, 'bench/baselines', file), String(port), ...extra] }),
});

/** Each group: its baseline first (the ratios are to it), then the floors, then grainbows. */
const GROUPS: Contender[][] = [
  [
    baseline('node:http (1 thread)', process.execPath, 'node-http.js'),
    baseline('relay floor (2 workers, no HTTP)', process.execPath, 'relay-floor.js', 'canned'),
    baseline('relay floor + node:http (2 workers, none of our code)', process.execPath, 'relay-floor.js', 'http'),
    { name: 'grainbows relay (2 actors)', command: grainbows(process.execPath, 'relay') },
  ],
  ...(node26 && !args.includes('--relay-only')
    ? [
        [
          baseline('node:cluster on Node 26 (2 processes)', node26, 'cluster.js', '2'),
          baseline('transfer floor on Node 26 (2 threads, plain node:http)', node26, 'transfer-floor.js'),
          { name: 'grainbows transfer on Node 26 (2 actors)', command: grainbows(node26, 'transfer') },
        ],
      ]
    : []),
];
const CONTENDERS = GROUPS.flat();

/** One thread's name and CPU seconds so far; worker processes' threads (node:cluster) count as workers. */
interface ThreadSample {
  key: string;
  group: 'main' | 'named' | 'helpers';
  seconds: number;
}

const CLOCK_TICKS_PER_SECOND = 100;

function cpuSeconds(statPath: string): number {
  const stat = readFileSync(statPath, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
}

/**
 * The server's threads in three groups: its main thread; its workers (threads named like the main thread,
 * i.e. created after it set its title, or Node 26's "WorkerThread"; or a child process, counted whole);
 * and the rest, the runtime's helper threads (V8's GC workers, libuv's).
 */
function threadSamples(pid: number): ThreadSample[] {
  const samples: ThreadSample[] = [];
  const mainName = readFileSync(`/proc/${pid}/comm`, 'utf8').trim();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      const seconds = cpuSeconds(`/proc/${pid}/task/${tid}/stat`);
      const name = readFileSync(`/proc/${pid}/task/${tid}/comm`, 'utf8').trim();
      const named = (name === mainName && mainName !== 'node') || name === 'WorkerThread';
      samples.push({ key: `t${tid}`, group: Number(tid) === pid ? 'main' : named ? 'named' : 'helpers', seconds });
    } catch {
      // the thread ended meanwhile
    }
  }
  const children = readFileSync(`/proc/${pid}/task/${pid}/children`, 'utf8').trim();
  for (const child of children ? children.split(/\s+/) : []) {
    try {
      samples.push({ key: `p${child}`, group: 'named', seconds: treeCpuSeconds(Number(child)) });
    } catch {
      // the process ended meanwhile
    }
  }
  return samples;
}

/** Busy CPU seconds of the whole machine so far (every core, from /proc/stat), for what wrk and the rest cost. */
function machineBusySeconds(): number {
  const [, ...ticks] = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).map(Number);
  const [user, nice, system, , , irq, softirq, steal] = ticks;
  return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS_PER_SECOND;
}

interface Round {
  rps: number;
  /** µs of CPU per request: the server's threads, then by group. */
  total: number;
  main: number;
  named: number;
  helpers: number;
  /** µs per request the rest of the machine spent meanwhile: wrk, mostly. */
  rest: number;
  /** µs per request of the server's busiest single thread (or worker process). */
  busiest: number;
}

async function measure(contender: Contender): Promise<Round> {
  const server = await start(contender);
  try {
    await runWrk(`${server.url}/`, 16, 2); // the same unrecorded warm-up for everyone (JIT)
    const pid = server.child.pid!;
    const before = threadSamples(pid);
    const machineBefore = machineBusySeconds();
    const { rps, errors } = await runWrk(`${server.url}/`, CONNECTIONS, SECONDS);
    const machine = machineBusySeconds() - machineBefore;
    const after = threadSamples(pid);
    const requests = rps * SECONDS;
    const perRequest = (seconds: number) => (seconds * 1e6) / requests;
    const earlier = new Map(before.map((sample) => [sample.key, sample.seconds]));
    const round: Round = { rps, total: 0, main: 0, named: 0, helpers: 0, rest: 0, busiest: 0 };
    for (const sample of after) {
      const us = perRequest(sample.seconds - (earlier.get(sample.key) ?? 0));
      round[sample.group] += us;
      round.busiest = Math.max(round.busiest, us);
    }
    round.total = round.main + round.named + round.helpers;
    round.rest = Math.max(0, perRequest(machine) - round.total);
    process.stderr.write(
      `${contender.name}: ${rps.toFixed(0)} req/s, ${errors} errors, ${round.total.toFixed(1)} µs CPU/req (main ${round.main.toFixed(1)}, workers ${round.named.toFixed(1)}, helpers ${round.helpers.toFixed(1)}; rest of the machine ${round.rest.toFixed(1)})\n`,
    );
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
  const worker = new Worker("require('node:worker_threads').parentPort.on('message', (m) => require('node:worker_threads').parentPort.postMessage(m, [m]))", {
    eval: true,
  });
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

const summary = new Map(
  CONTENDERS.map(({ name }) => {
    const runs = results.get(name)!;
    const pick = (key: keyof Round) => median(runs.map((run) => run[key]));
    const row = {
      rps: pick('rps'),
      total: pick('total'),
      main: pick('main'),
      named: pick('named'),
      helpers: pick('helpers'),
      rest: pick('rest'),
      busiest: pick('busiest'),
      all: runs.map((run) => run.rps),
    };
    return [name, row];
  }),
);
const cores = os.cpus().length;
/**
 * The rate this server could reach on this machine at its measured costs: all cores shared between its
 * threads and wrk (µs per request of each), and no faster than its busiest thread alone can go.
 */
const ceiling = (row: { total: number; rest: number; busiest: number }) => Math.min((cores * 1e6) / (row.total + row.rest), 1e6 / row.busiest);
const lines: string[] = [];
lines.push(
  `Machine: ${cores} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.versions.node}${node26 ? ' and 26' : ''}; wrk on the same cores. ${new Date().toISOString().slice(0, 10)}.`,
);
lines.push('');
lines.push(
  `| hello, ${CONNECTIONS} connections (median of ${rounds} interleaved rounds) | ok req/s | ratio | CPU µs/req, server | main thread | worker / actor threads | runtime helper threads | rest of the machine (wrk) | CPU-bound ceiling | ceiling ratio |`,
);
lines.push('|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const group of GROUPS) {
  const first = summary.get(group[0].name)!;
  for (const { name } of group) {
    const row = summary.get(name)!;
    const ratio = row === first ? '' : `${(row.rps / first.rps).toFixed(2)}×`;
    const ceilingRatio = row === first ? '' : `${(ceiling(row) / ceiling(first)).toFixed(2)}×`;
    const named = row.named > 0 ? row.named.toFixed(1) : '–';
    lines.push(
      `| ${name} | ${row.rps.toFixed(0)} | ${ratio} | ${row.total.toFixed(1)} | ${row.main.toFixed(1)} | ${named} | ${row.helpers.toFixed(1)} | ${row.rest.toFixed(1)} | ${ceiling(row).toFixed(0)} | ${ceilingRatio} |`,
    );
  }
}
lines.push('');
lines.push(
  `All rounds: ${CONTENDERS.map(
    ({ name }) =>
      `${name} ${summary
        .get(name)!
        .all.map((rps) => (rps / 1000).toFixed(1))
        .join('/')}k`,
  ).join('; ')}.`,
);
lines.push('');
lines.push(
  `Ratios are to the first row of each group. CPU per request is each thread's user + system time over the requests served; "main thread" for node:http is all of its HTTP work, kernel included; node:cluster's worker column is its two worker processes whole. "Rest of the machine" is every other busy tick of the ${cores} cores meanwhile, wrk's mostly. The CPU-bound ceiling is min(${cores} cores ÷ (server + rest), 1 core ÷ the busiest thread): the rate these costs allow here, whatever the scheduler does.`,
);
lines.push('');
lines.push('| on this machine, median of 200 | 20 ms apart | back to back |');
lines.push('|---|---:|---:|');
lines.push(`| thread crossing: postMessage to a worker thread and back | ${crossing.idle.toFixed(0)} µs | ${crossing.busy.toFixed(0)} µs |`);
lines.push(`| loopback TCP round trip within one process | ${loopback.idle.toFixed(0)} µs | ${loopback.busy.toFixed(0)} µs |`);
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
if (writeTo) writeRegion(writeTo, 'bench-floor', table);
