/**
 * grainbows against node:http and node:cluster, same app, same machine, one run (the machine is shared and
 * noisy: the ratios are what to read). Prints a Markdown table; `--write docs/performance.md` also saves it.
 *
 *   npm run bench                       # all scenarios
 *   npm run bench -- --quick            # shorter runs
 *   NODE26=/path/to/node npm run bench  # adds the transfer hand-off and a Node 26 cluster baseline
 *
 * Ends with the mixed scenario of the task pool (bench/tasks.ts).
 *
 * Needs wrk (apt-get install wrk). Load is bounded: each wrk run lasts a few seconds.
 */
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  ALL_CONTENDERS,
  ROOT,
  node26,
  runWrk,
  start,
  treeCpuSeconds,
  treeRssMb,
  withPeakRss,
  writeRegion,
  type Contender,
  type LoadResult,
  type Running,
} from './harness.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const writeTo = args.includes('--write') ? args[args.indexOf('--write') + 1] : undefined;
const seconds = quick ? 4 : 8;
/**
 * Sleeper runs are longer: with 1 s sleeps nothing completes in the first second, so an N-second run can at
 * best finish connections × (N − 1) / N requests a second (5,000 × 19/20 = 4,750 at 20 s).
 */
const sleeperSeconds = quick ? 6 : 20;

/** Most connections one process can hold here: the hard RLIMIT_NOFILE less room for the process's own fds. */
function connectionCeiling(): number {
  try {
    const limit = Number(execFileSync('bash', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim());
    return Number.isFinite(limit) ? limit - 1000 : 20_000;
  } catch {
    return 20_000;
  }
}
const MANY = Math.min(20_000, connectionCeiling());

/** `--only relay` (a substring of the names) narrows the run, for a quick look at one server. */
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : undefined;
const CONTENDERS = only ? ALL_CONTENDERS.filter((c) => c.name.includes(only)) : ALL_CONTENDERS;

function runTrickle(url: string, concurrency: number, durationS: number, exe: string): Promise<LoadResult> {
  return new Promise((resolve) => {
    const child = spawn(exe, [path.join(ROOT, 'dist/bench/trickle.js'), url, String(concurrency), String(durationS)], { stdio: ['ignore', 'pipe', 'inherit'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.on('close', () => {
      const parsed = JSON.parse(out) as { perSecond: number; p99Ms: number; errors: number };
      resolve({ rps: parsed.perSecond, p99Ms: parsed.p99Ms, errors: parsed.errors });
    });
  });
}

/** RSS growth while one client asks for 64 MiB and reads none of it. */
async function stalledReader(url: string, pid: number): Promise<number> {
  // Warm up first (one 1 MiB response read in full), so the growth measured is buffering, not the first
  // request's code being compiled. Every contender gets the same warm-up.
  await (await fetch(`${url}/big?mb=1`)).arrayBuffer();
  await sleep(500);
  const before = treeRssMb(pid);
  const { port } = new URL(url);
  const socket = net.connect(Number(port), '127.0.0.1');
  socket.on('error', () => {});
  socket.pause();
  socket.write('GET /big?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n');
  let peak = before;
  for (let i = 0; i < 30; i++) {
    await sleep(100);
    peak = Math.max(peak, treeRssMb(pid));
  }
  socket.destroy();
  return peak - before;
}

interface Scenario {
  name: string;
  run: (server: Running, contender: Contender) => Promise<LoadResult>;
}

const HELLO = 'hello, 64 connections';
/**
 * Hello world is short and CPU-bound, so drift on a shared machine moves it most: it runs in interleaved
 * rounds (every server once per round) and the median round counts.
 */
const helloRounds = quick ? 1 : 5;
/** `--hello-only`: just the interleaved hello-world rounds (a quick A/B of per-request cost). */
const helloOnly = args.includes('--hello-only');

const SCENARIOS: Scenario[] = [
  { name: '5,000 connections sleeping 1 s', run: (s) => runWrk(`${s.url}/sleep?ms=1000`, 5000, sleeperSeconds) },
  { name: `${MANY.toLocaleString('en')} connections sleeping 1 s`, run: (s) => runWrk(`${s.url}/sleep?ms=1000`, MANY, sleeperSeconds) },
  { name: '2,000 streams of 20 chunks 100 ms apart', run: (s) => runWrk(`${s.url}/stream`, 2000, seconds + 2) },
  { name: '200 trickled 1 MiB chunked uploads', run: (s) => runTrickle(s.url, 200, seconds, process.execPath) },
];

interface Row {
  scenario: string;
  contender: string;
  rps: number;
  p99Ms: number;
  errors: number;
  peakMb: number;
  /** Server CPU (all threads and processes) per request served, in µs; hello world only. */
  cpuUsPerRequest?: number;
}

const rows: Row[] = [];
const stalled: Array<{ contender: string; growthMb: number }> = [];

/** One fresh server, warmed up the same way for everyone, measured under `scenario`. */
async function measure(contender: Contender, scenario: Scenario): Promise<Row> {
  const server = await start(contender);
  try {
    // The same unrecorded warm-up for every server: the first second otherwise measures the JIT.
    await runWrk(`${server.url}/`, 16, 2);
    const cpuBefore = treeCpuSeconds(server.child.pid!);
    const { result, peakMb } = await withPeakRss(server.child.pid!, () => scenario.run(server, contender));
    const cpuSeconds = treeCpuSeconds(server.child.pid!) - cpuBefore;
    const cpuUsPerRequest = scenario.name === HELLO && result.rps > 0 ? (cpuSeconds * 1e6) / (result.rps * seconds) : undefined;
    const cpuNote = cpuUsPerRequest === undefined ? '' : `, ${cpuUsPerRequest.toFixed(1)} µs CPU/req`;
    process.stderr.write(
      `${contender.name} | ${scenario.name}: ${result.rps.toFixed(0)} req/s, p99 ${result.p99Ms.toFixed(1)} ms, ${result.errors} errors, peak ${peakMb.toFixed(0)} MB${cpuNote}\n`,
    );
    return { scenario: scenario.name, contender: contender.name, ...result, peakMb, ...(cpuUsPerRequest === undefined ? {} : { cpuUsPerRequest }) };
  } finally {
    await server.stop();
    await sleep(500);
  }
}

const hello: Scenario = { name: HELLO, run: (s) => runWrk(`${s.url}/`, 64, seconds) };
const helloRuns = new Map<string, Row[]>();
for (let round = 0; round < helloRounds; round++) {
  for (const contender of CONTENDERS) {
    const runs = helloRuns.get(contender.name) ?? [];
    runs.push(await measure(contender, hello));
    helloRuns.set(contender.name, runs);
  }
}
const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
for (const contender of CONTENDERS) {
  const runs = helloRuns.get(contender.name)!;
  rows.push({
    scenario: HELLO,
    contender: contender.name,
    rps: median(runs.map((r) => r.rps)),
    p99Ms: median(runs.map((r) => r.p99Ms)),
    errors: runs.reduce((sum, r) => sum + r.errors, 0),
    peakMb: Math.max(...runs.map((r) => r.peakMb)),
    cpuUsPerRequest: median(runs.map((r) => r.cpuUsPerRequest ?? NaN)),
  });
}

for (const contender of helloOnly ? [] : CONTENDERS) {
  // A fresh server per scenario, so peak RSS belongs to that scenario alone.
  for (const scenario of SCENARIOS) rows.push(await measure(contender, scenario));
  const server = await start(contender);
  try {
    stalled.push({ contender: contender.name, growthMb: await stalledReader(server.url, server.child.pid!) });
  } finally {
    await server.stop();
  }
}

/** The same runtime's baseline of a kind: grainbows on Node 26 is compared with node:http and node:cluster on Node 26. */
function baseline(row: Row, kind: 'node:http' | 'node:cluster'): Row | undefined {
  const onNode26 = row.contender.includes('Node 26');
  const name =
    kind === 'node:http' ? (onNode26 ? 'node:http on Node 26' : 'node:http (1 thread)') : onNode26 ? 'node:cluster on Node 26' : 'node:cluster (2 processes)';
  return rows.find((candidate) => candidate.scenario === row.scenario && candidate.contender === name);
}

const scenarioOrder = [HELLO, ...SCENARIOS.map((scenario) => scenario.name)];
const position = (row: Row) => CONTENDERS.findIndex((c) => c.name === row.contender) * 100 + scenarioOrder.indexOf(row.scenario);
rows.sort((a, b) => position(a) - position(b));

const lines: string[] = [];
lines.push(
  `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, ${(os.totalmem() / 2 ** 30).toFixed(0)} GiB, Node ${process.versions.node}${node26 ? ' and 26' : ''}; load generator on the same cores. ${new Date().toISOString().slice(0, 10)}.`,
);
lines.push('');
lines.push('| scenario | server | ok req/s | p99 | errors | peak RSS | req/s ÷ node:http | RSS ÷ node:http | req/s ÷ node:cluster | RSS ÷ node:cluster |');
lines.push('|---|---|---:|---:|---:|---:|---:|---:|---:|---:|');
for (const row of rows) {
  const isGrainbows = row.contender.startsWith('grainbows');
  const ratio = (a: number, b: number | undefined) => (isGrainbows && b ? `${(a / b).toFixed(2)}×` : '');
  const http = baseline(row, 'node:http');
  const cluster = baseline(row, 'node:cluster');
  lines.push(
    `| ${row.scenario} | ${row.contender} | ${row.rps.toFixed(0)} | ${row.p99Ms.toFixed(0)} ms | ${row.errors} | ${row.peakMb.toFixed(0)} MB | ${ratio(row.rps, http?.rps)} | ${ratio(row.peakMb, http?.peakMb)} | ${ratio(row.rps, cluster?.rps)} | ${ratio(row.peakMb, cluster?.peakMb)} |`,
  );
}
lines.push('');
lines.push(
  `Ratios compare grainbows with node:http and node:cluster on the same Node version, measured in this run. Hello world: median of ${helloRounds} interleaved round(s); all rounds: ${[...helloRuns].map(([name, runs]) => `${name} ${runs.map((r) => (r.rps / 1000).toFixed(1)).join('/')}k`).join('; ')}.`,
);
lines.push('');
lines.push('| hello world, server CPU per request (all threads and processes; median of the rounds) | µs/req | ÷ node:http | ÷ node:cluster |');
lines.push('|---|---:|---:|---:|');
for (const row of rows.filter((candidate) => candidate.scenario === HELLO)) {
  const isGrainbows = row.contender.startsWith('grainbows');
  const cpu = row.cpuUsPerRequest ?? NaN;
  const ratio = (other: Row | undefined) => (isGrainbows && other?.cpuUsPerRequest ? `${(cpu / other.cpuUsPerRequest).toFixed(2)}×` : '');
  lines.push(`| ${row.contender} | ${cpu.toFixed(1)} | ${ratio(baseline(row, 'node:http'))} | ${ratio(baseline(row, 'node:cluster'))} |`);
}
// --hello-only runs no stalled reader: no table then.
if (stalled.length > 0) {
  lines.push('');
  lines.push('| one client asks for 64 MiB and reads none of it | server growth |');
  lines.push('|---|---:|');
  for (const entry of stalled) lines.push(`| ${entry.contender} | ${entry.growthMb.toFixed(1)} MB |`);
}
const table = lines.join('\n');
process.stdout.write(`${table}\n`);

if (writeTo) writeRegion(writeTo, helloOnly ? 'bench-hello' : 'bench', table);

// The mixed scenario (heavy CPU requests beside light ones, with and without the task pool) is its own
// script, run last with the same options.
if (!helloOnly && !only) {
  const mixed = spawn(process.execPath, [path.join(ROOT, 'dist/bench/tasks.js'), ...args], { stdio: 'inherit' });
  await new Promise((resolve) => mixed.on('close', resolve));
}
