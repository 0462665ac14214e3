/**
 * The mixed benchmark of the task pool: 4 connections asking for 20 ms of CPU each (`/heavy`) beside 32
 * asking hello world, on 2 cores. With the CPU inside the request, a light request waits behind whatever
 * heavy one its process or actor is running; with `--tasks`, actors only wait on a task thread, and task
 * threads run at a lower OS priority (`--task-nice`), so light requests preempt heavy work.
 *
 *   npm run bench:tasks                          # also the last part of `npm run bench`
 *   npm run bench:tasks -- --quick               # shorter runs
 *   npm run bench:tasks -- --write docs/performance.md
 *
 * Each server is measured four ways, each for `seconds`:
 *   - closed loop (the scenario): wrk on /heavy with 4 connections and wrk on / with 32, each sending
 *     its next request as soon as the previous one is answered; and the light wrk alone, as the baseline.
 *   - paced light load: 1,000 hello requests a second, sent on schedule over 32 connections whatever the
 *     server does (bench/paced.ts), beside the same heavy wrk; and alone. A closed-loop light client takes
 *     whatever CPU the server gives it, so its figures say how the CPU was shared; the paced one says how
 *     long a light request waits when light traffic is what it is in production, a share of the machine.
 * Ratios are read within this run: the machine is shared and noisy.
 */
import { spawn } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { pathToFileURL } from 'node:url';
import { CLI, ROOT, start, toMs, writeRegion, type Contender } from './harness.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const writeTo = args.includes('--write') ? args[args.indexOf('--write') + 1] : undefined;
const SECONDS = quick ? 5 : 10;
const HEAVY_CONNECTIONS = 4;
const LIGHT_CONNECTIONS = 32;
const PACED_RATE = 1000;
const HEAVY_MS = 20;

const BENCH = path.join(ROOT, 'bench');
/** The heavy work itself, as the servers run it (a plain JS module, shared with them). */
const { burn } = (await import(pathToFileURL(path.join(BENCH, 'burn.js')).href)) as { burn: (iterations: number) => number };

/** Iterations of bench/burn.js that take HEAVY_MS here, once optimised (the median of a few timed runs). */
function calibrate(): number {
  let iterations = 1_000_000;
  for (let i = 0; i < 20; i++) burn(iterations); // warm up: let V8 optimise it
  const timeOf = (n: number) => {
    const runs = Array.from({ length: 7 }, () => {
      const started = performance.now();
      burn(n);
      return performance.now() - started;
    }).sort((a, b) => a - b);
    return runs[3];
  };
  for (let round = 0; round < 3; round++) iterations = Math.round((iterations * HEAVY_MS) / timeOf(iterations));
  return iterations;
}

const grainbows =
  (app: string, extra: string[] = []) =>
  (port: number) => ({
    exe: process.execPath,
    argv: [CLI, '-b', `127.0.0.1:${port}`, '-w', '2', '--backlog', '4096', '--worker-connections', '1000', ...extra, path.join(BENCH, app)],
  });
const CONTENDERS: Contender[] = [
  { name: 'node:http (1 thread)', command: (port) => ({ exe: process.execPath, argv: [path.join(BENCH, 'baselines/node-http.js'), String(port)] }) },
  { name: 'node:cluster (2 processes)', command: (port) => ({ exe: process.execPath, argv: [path.join(BENCH, 'baselines/cluster.js'), String(port), '2'] }) },
  { name: 'grainbows -w 2, CPU in the request', command: grainbows('app.js') },
  { name: 'grainbows -w 2 --tasks (nice 10)', command: grainbows('tasks-app.js', ['--tasks', path.join(BENCH, 'burn.js')]) },
  { name: 'grainbows -w 2 --tasks --task-nice 0', command: grainbows('tasks-app.js', ['--tasks', path.join(BENCH, 'burn.js'), '--task-nice', '0']) },
];

interface Latency {
  rps: number;
  p50Ms: number;
  p99Ms: number;
  errors: number;
}

/** One wrk process with one thread: requests per second answered 2xx, its p50 and p99, errors. */
function wrk(url: string, connections: number, seconds: number): Promise<Latency> {
  return new Promise((resolve) => {
    const child = spawn('wrk', ['-t', '1', '-c', String(connections), '-d', `${seconds}s`, '--timeout', '10s', '--latency', url], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('close', () => {
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      const socket = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      if (!requests) process.stderr.write(`wrk said:\n${out}\n`);
      resolve({
        rps: (requests - non2xx) / seconds,
        p50Ms: toMs(/\s50%\s+(\S+)/.exec(out)?.[1] ?? 'NaN'),
        p99Ms: toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? 'NaN'),
        errors: non2xx + (socket ? socket.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0),
      });
    });
  });
}

function paced(url: string, seconds: number): Promise<Latency> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [path.join(ROOT, 'dist/bench/paced.js'), url, String(PACED_RATE), String(LIGHT_CONNECTIONS), String(seconds)], {
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('close', () => {
      const result = JSON.parse(out) as { ok: number; errors: number; p50Ms: number; p99Ms: number };
      resolve({ rps: result.ok / seconds, p50Ms: result.p50Ms, p99Ms: result.p99Ms, errors: result.errors });
    });
  });
}

interface Row {
  contender: string;
  closedAlone: Latency;
  closedLight: Latency;
  closedHeavy: Latency;
  pacedAlone: Latency;
  pacedLight: Latency;
  pacedHeavy: Latency;
}

const iterations = calibrate();
process.stderr.write(`heavy request: ${iterations} iterations of bench/burn.js ≈ ${HEAVY_MS} ms here\n`);
const rows: Row[] = [];
for (const contender of CONTENDERS) {
  process.stderr.write(`${contender.name}\n`);
  const server = await start(contender);
  try {
    const light = `${server.url}/`;
    const heavy = `${server.url}/heavy?n=${iterations}`;
    // Warm up both routes (JIT, the task threads' first call), then let the server settle.
    await Promise.all([wrk(light, 8, 1), wrk(heavy, 2, 1)]);
    await sleep(500);
    const closedAlone = await wrk(light, LIGHT_CONNECTIONS, SECONDS);
    const [closedLight, closedHeavy] = await Promise.all([wrk(light, LIGHT_CONNECTIONS, SECONDS), wrk(heavy, HEAVY_CONNECTIONS, SECONDS)]);
    const pacedAlone = await paced(light, SECONDS);
    const [pacedLight, pacedHeavy] = await Promise.all([paced(light, SECONDS), wrk(heavy, HEAVY_CONNECTIONS, SECONDS)]);
    rows.push({ contender: contender.name, closedAlone, closedLight, closedHeavy, pacedAlone, pacedLight, pacedHeavy });
  } finally {
    await server.stop();
  }
}

const cluster = rows.find((row) => row.contender.startsWith('node:cluster'));
const ms = (value: number) => (value >= 100 ? value.toFixed(0) : value.toFixed(1));
const times = (a: number, b: number | undefined) => (b ? `${(a / b).toFixed(2)}×` : '');
const errorsOf = (row: Row) =>
  [row.closedAlone, row.closedLight, row.closedHeavy, row.pacedAlone, row.pacedLight, row.pacedHeavy].reduce((sum, part) => sum + part.errors, 0);
const lines: string[] = [];
lines.push(
  `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.versions.node}; load generators on the same cores; ${SECONDS} s per run; a heavy request is ${HEAVY_MS} ms of CPU. ${new Date().toISOString().slice(0, 10)}.`,
);
lines.push('');
lines.push('Closed loop (wrk: 4 connections on /heavy, 32 on hello world):');
lines.push('');
lines.push(
  '| server | light alone p50 / p99 | light mixed p50 / p99 | light p50, p99 ÷ alone | light req/s mixed | heavy req/s | heavy ÷ node:cluster | errors |',
);
lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const row of rows)
  lines.push(
    `| ${row.contender} | ${ms(row.closedAlone.p50Ms)} / ${ms(row.closedAlone.p99Ms)} ms | ${ms(row.closedLight.p50Ms)} / ${ms(row.closedLight.p99Ms)} ms | ${times(row.closedLight.p50Ms, row.closedAlone.p50Ms)}, ${times(row.closedLight.p99Ms, row.closedAlone.p99Ms)} | ${row.closedLight.rps.toFixed(0)} | ${row.closedHeavy.rps.toFixed(1)} | ${times(row.closedHeavy.rps, cluster?.closedHeavy.rps)} | ${errorsOf(row)} |`,
  );
lines.push('');
lines.push(
  `Paced light load (${PACED_RATE} hello requests/s on ${LIGHT_CONNECTIONS} connections, latency from each request's scheduled time) beside the same heavy wrk:`,
);
lines.push('');
lines.push('| server | light alone p50 / p99 | light mixed p50 / p99 | light p50, p99 ÷ alone | heavy req/s | heavy ÷ node:cluster |');
lines.push('|---|---:|---:|---:|---:|---:|');
for (const row of rows)
  lines.push(
    `| ${row.contender} | ${ms(row.pacedAlone.p50Ms)} / ${ms(row.pacedAlone.p99Ms)} ms | ${ms(row.pacedLight.p50Ms)} / ${ms(row.pacedLight.p99Ms)} ms | ${times(row.pacedLight.p50Ms, row.pacedAlone.p50Ms)}, ${times(row.pacedLight.p99Ms, row.pacedAlone.p99Ms)} | ${row.pacedHeavy.rps.toFixed(1)} | ${times(row.pacedHeavy.rps, cluster?.pacedHeavy.rps)} |`,
  );
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
if (writeTo) writeRegion(writeTo, 'bench-tasks', table);
