/**
 * HTTPS: grainbows against node:https, alone and in a node:cluster of the same size, same app, one run.
 * Scenarios: keep-alive hello world over TLS, a new TLS handshake per request (`Connection: close`), and
 * HTTP/2 (h2load, 32 connections of 10 streams), against node:http2's secure server in the cluster.
 * Besides req/s it reports the server's CPU per request and the main thread's share of a core: with TLS
 * ended in the actors main should do next to nothing (target ≤ 5 %), where ending it in main costs
 * about half a core.
 *
 *   npm run bench:tls                  # writes nothing; --write docs/performance.md saves the table
 *   npm run bench:tls -- --quick       # shorter runs
 *   npm run bench:tls -- --only h2load # the scenarios whose name says so
 *
 * Needs wrk, h2load (nghttp2-client) and openssl. Node 26 rows come from NODE26 or .ci/cache/node26, as in bench/run.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { APP, CLI, ROOT, node26, runWrk, start, treeCpuSeconds, writeRegion, type Contender, type LoadResult } from './harness.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const writeTo = args.includes('--write') ? args[args.indexOf('--write') + 1] : undefined;
const seconds = quick ? 4 : 8;
/** `--rounds N`: every run N times, interleaved, and the median run (by req/s) reported. */
const rounds = args.includes('--rounds') ? Number(args[args.indexOf('--rounds') + 1]) : 1;
const WORKERS = 2;

const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-bench-tls-'));
const certfile = path.join(dir, 'cert.pem');
const keyfile = path.join(dir, 'key.pem');
execFileSync(
  'openssl',
  [
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:prime256v1',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=127.0.0.1',
    '-keyout',
    keyfile,
    '-out',
    certfile,
  ],
  {
    stdio: 'ignore',
  },
);

/** Each server is started per scenario: with HTTP/2 offered (ALPN h2 first) for the h2load one, HTTP/1.1 only otherwise. */
type Protocol = 'h1' | 'h2';

const httpsBaseline = (exe: string, workers: number, protocol: Protocol) => (port: number) => ({
  exe,
  argv: [path.join(ROOT, 'bench/baselines/https-cluster.js'), String(port), String(workers), certfile, keyfile, protocol],
});
const transferFloor = (exe: string, protocol: Protocol) => (port: number) => ({
  exe,
  argv: [path.join(ROOT, 'bench/baselines/tls-transfer-floor.js'), String(port), certfile, keyfile, protocol],
});
const grainbowsTls = (exe: string, handoff: string, protocol: Protocol) => (port: number) => ({
  exe,
  argv: [
    CLI,
    '-b',
    `127.0.0.1:${port}`,
    '-w',
    String(WORKERS),
    '--handoff',
    handoff,
    '--backlog',
    '4096',
    '--worker-connections',
    '20000',
    '--certfile',
    certfile,
    '--keyfile',
    keyfile,
    '--http-protocols',
    protocol === 'h2' ? 'h2,h1' : 'h1',
    APP,
  ],
});

const contenders = (protocol: Protocol): Contender[] => [
  { name: 'node:https (1 process)', command: httpsBaseline(process.execPath, 1, protocol) },
  { name: `node:cluster https (${WORKERS} processes)`, command: httpsBaseline(process.execPath, WORKERS, protocol) },
  { name: `grainbows transfer, TLS in actors (${WORKERS})`, command: grainbowsTls(process.execPath, 'transfer', protocol) },
  { name: `grainbows relay, TLS in main (${WORKERS})`, command: grainbowsTls(process.execPath, 'relay', protocol) },
  ...(node26
    ? [
        { name: 'node:cluster https on Node 26', command: httpsBaseline(node26, WORKERS, protocol) },
        // Node 26 moves a socket between threads: what two threads ending TLS cost with none of our code.
        { name: `TLS transfer floor on Node 26 (${WORKERS} threads)`, command: transferFloor(node26, protocol) },
        { name: 'grainbows transfer on Node 26, TLS in actors', command: grainbowsTls(node26, 'transfer', protocol) },
      ]
    : []),
];

/** CPU seconds the main thread of `pid` has used (its task whose id is the pid). */
function mainThreadCpuSeconds(pid: number): number {
  try {
    const stat = readFileSync(`/proc/${pid}/task/${pid}/stat`, 'utf8');
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

interface Row {
  contender: string;
  /** Which round of the interleaved runs it belongs to. */
  round: number;
  scenario: string;
  result: LoadResult;
  cpuUsPerRequest: number;
  /** The serving process's main thread, % of one core over the run (grainbows; for the cluster, its primary). */
  mainCorePercent: number;
}

interface Scenario {
  name: string;
  protocol: Protocol;
  load: (url: string) => Promise<LoadResult>;
}

const ALL_SCENARIOS: Scenario[] = [
  { name: 'TLS keep-alive hello, 50 connections (wrk)', protocol: 'h1', load: (url) => runWrk(url, 50, seconds) },
  { name: 'TLS handshake per request, 32 connections (wrk)', protocol: 'h1', load: (url) => runWrk(url, 32, seconds, 10, ['-H', 'Connection: close']) },
  { name: 'HTTP/2 hello, 32 connections × 10 streams (h2load)', protocol: 'h2', load: (url) => runH2load(url, 32, 10, seconds) },
];

/** `--only TEXT`: the scenarios whose name contains TEXT (`--only h2load`). */
const only = args.includes('--only') ? args[args.indexOf('--only') + 1] : '';
const SCENARIOS = ALL_SCENARIOS.filter((scenario) => scenario.name.includes(only));

/** h2load for `durationS` seconds: ok requests per second (2xx), and every request that failed or errored. */
function runH2load(url: string, connections: number, streams: number, durationS: number): Promise<LoadResult> {
  return new Promise((resolve, reject) => {
    const child = spawn('h2load', ['-c', String(connections), '-m', String(streams), '-D', String(durationS), url], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (out += chunk));
    child.on('close', () => {
      // h2load falls back to pipelined HTTP/1.1 when ALPN does not give it h2: that would not be this scenario.
      const protocol = /Application protocol: (\S+)/.exec(out)?.[1];
      if (protocol !== 'h2') {
        reject(new Error(`h2load spoke ${protocol ?? 'nothing'}, not h2:\n${out}`));
        return;
      }
      const ok = Number(/status codes: (\d+) 2xx/.exec(out)?.[1] ?? 0);
      const counts = /requests: \d+ total, \d+ started, \d+ done, \d+ succeeded, (\d+) failed, (\d+) errored/.exec(out);
      if (!ok) process.stderr.write(`h2load said:\n${out}\n`);
      resolve({ rps: ok / durationS, p99Ms: NaN, errors: counts ? Number(counts[1]) + Number(counts[2]) : NaN });
    });
  });
}

const runs: Row[] = [];
for (let round = 0; round < rounds; round++) {
  for (const scenario of SCENARIOS) {
    for (const contender of contenders(scenario.protocol)) runs.push(await measure(contender, scenario, round));
  }
}
/** The median run of each server and scenario. */
const rows: Row[] = [];
for (const contender of contenders('h1')) {
  for (const scenario of SCENARIOS) {
    const mine = runs.filter((row) => row.contender === contender.name && row.scenario === scenario.name).sort((a, b) => a.result.rps - b.result.rps);
    rows.push(mine[Math.floor(mine.length / 2)]);
  }
}

async function measure(contender: Contender, scenario: Scenario, round: number): Promise<Row> {
  const server = await start(contender);
  const url = server.url.replace('http:', 'https:') + '/';
  try {
    await runWrk(url, 16, 1); // warm-up
    const servingPid = server.pid;
    const [cpuBefore, mainBefore] = [treeCpuSeconds(server.child.pid!), mainThreadCpuSeconds(servingPid)];
    const result = await scenario.load(url);
    const [cpuAfter, mainAfter] = [treeCpuSeconds(server.child.pid!), mainThreadCpuSeconds(servingPid)];
    const requests = result.rps * seconds;
    const row: Row = {
      contender: contender.name,
      round,
      scenario: scenario.name,
      result,
      cpuUsPerRequest: requests > 0 ? ((cpuAfter - cpuBefore) * 1e6) / requests : NaN,
      mainCorePercent: ((mainAfter - mainBefore) / seconds) * 100,
    };
    process.stderr.write(
      `${row.contender} | ${row.scenario}: ${result.rps.toFixed(0)} req/s, ${result.errors} errors, ${row.cpuUsPerRequest.toFixed(0)} µs CPU/request, main ${row.mainCorePercent.toFixed(0)} % of a core\n`,
    );
    return row;
  } finally {
    await server.stop();
    await sleep(500);
  }
}

const median = (values: number[]): number => {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b);
  return sorted.length === 0 ? NaN : sorted[Math.floor(sorted.length / 2)];
};
/**
 * `row`'s rate against `base`'s (another server, same scenario), as the median of the ratios of runs made in
 * the same round: on a shared machine two servers measured minutes apart differ by more than either does.
 */
function pairedRatio(row: Row, isBase: (contender: string) => boolean): string {
  const ratios = runs
    .filter((run) => run.contender === row.contender && run.scenario === row.scenario)
    .map((run) => {
      const base = runs.find((other) => other.round === run.round && other.scenario === run.scenario && isBase(other.contender));
      return base && base.result.rps > 0 ? run.result.rps / base.result.rps : NaN;
    });
  const value = median(ratios);
  return Number.isFinite(value) ? `${value.toFixed(2)}×` : '';
}
const lines = [
  `${os.cpus().length} CPUs, ${os.cpus()[0]?.model ?? ''}, Node ${process.version}${node26 ? ' and 26' : ''}, ${new Date().toISOString().slice(0, 10)}, ${seconds} s per run, ${rounds} round${rounds === 1 ? '' : 's'}: each server's median run, and the median of the ratios between runs of the same round. Load generator on the same machine. Main thread: the serving process's (for the cluster, its primary, which accepts and hands connections to the workers).`,
  '',
  '| scenario | server | ok req/s | errors | CPU µs/request | main thread, % of a core | req/s ÷ node:https | req/s ÷ cluster (same Node) |',
  '|---|---|---|---|---|---|---|---|',
];
for (const scenario of SCENARIOS) {
  for (const row of rows.filter((candidate) => candidate.scenario === scenario.name)) {
    const on26 = row.contender.includes('Node 26');
    const isCluster = (name: string) => name.startsWith('node:cluster') && name.includes('Node 26') === on26;
    const main = `${row.mainCorePercent.toFixed(1)} %`;
    const toSingle = on26 ? '' : pairedRatio(row, (name) => name.startsWith('node:https'));
    const toCluster = isCluster(row.contender) ? '' : pairedRatio(row, isCluster);
    lines.push(
      `| ${row.scenario} | ${row.contender} | ${row.result.rps.toFixed(0)} | ${row.result.errors} | ${row.cpuUsPerRequest.toFixed(0)} | ${main} | ${toSingle} | ${toCluster} |`,
    );
  }
}
const table = lines.join('\n');
console.log(table);
if (writeTo) writeRegion(writeTo, 'bench-tls', table);
