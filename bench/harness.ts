/**
 * What the benchmarks share: the contenders (grainbows and its node:http / node:cluster baselines, on Node 20
 * and, when NODE26 or .ci/cache/node26 is there, on Node 26), starting and stopping one, measuring the RSS
 * of its process tree, driving wrk, and writing a result table into a region of a Markdown file.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = path.resolve(fileURLToPath(new URL('../..', import.meta.url)));

export const node26 = process.env.NODE26 ?? [path.join(ROOT, '.ci/cache/node26/bin/node')].find((candidate) => existsSync(candidate));

export interface Contender {
  name: string;
  command: (port: number) => { exe: string; argv: string[] };
  /** For grainbows: node flags given before the CLI, kept when the bench varies its settings. */
  nodeFlags?: string[];
  /** For grainbows: extra CLI options, kept likewise. */
  args?: string[];
}

export const CLI = path.join(ROOT, 'dist/source/cli/cli.js');
export const APP = path.join(ROOT, 'bench/app.js');
/**
 * grainbows on `exe` with `handoff`, 2 actors unless `workers` says otherwise; `workerConnections` high by
 * default so the cap never binds; `nodeFlags` go to node before the CLI (an operator's tuning, such as V8's
 * young generation size).
 */
export const grainbows =
  (exe: string, handoff: string, { workers = 2, workerConnections = 20_000, nodeFlags = [] as string[], args = [] as string[] } = {}) =>
  (port: number) => ({
    exe,
    argv: [
      ...nodeFlags,
      CLI,
      '-b',
      `127.0.0.1:${port}`,
      '-w',
      String(workers),
      '--handoff',
      handoff,
      '--backlog',
      '4096',
      '--worker-connections',
      String(workerConnections),
      ...args,
      APP,
    ],
  });
export const ALL_CONTENDERS: Contender[] = [
  { name: 'node:http (1 thread)', command: (port) => ({ exe: process.execPath, argv: [path.join(ROOT, 'bench/baselines/node-http.js'), String(port)] }) },
  {
    name: 'node:cluster (2 processes)',
    command: (port) => ({ exe: process.execPath, argv: [path.join(ROOT, 'bench/baselines/cluster.js'), String(port), '2'] }),
  },
  { name: 'grainbows relay (2 actors)', command: grainbows(process.execPath, 'relay') },
  { name: 'grainbows transfer (2 actors)', command: grainbows(process.execPath, 'transfer') },
  ...(node26
    ? [
        { name: 'node:http on Node 26', command: (port: number) => ({ exe: node26, argv: [path.join(ROOT, 'bench/baselines/node-http.js'), String(port)] }) },
        {
          name: 'node:cluster on Node 26',
          command: (port: number) => ({ exe: node26, argv: [path.join(ROOT, 'bench/baselines/cluster.js'), String(port), '2'] }),
        },
        { name: 'grainbows transfer on Node 26', command: grainbows(node26, 'transfer') },
      ]
    : []),
];

export interface Running {
  child: ChildProcess;
  /** The serving process, from its `Listening at: URL (PID)` line: on Node 20 grainbows' command is a launcher and this its child. */
  pid: number;
  url: string;
  stop(): Promise<void>;
}

export function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const server = net.createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

export async function start(contender: Contender): Promise<Running> {
  const port = await freePort();
  const { exe, argv } = contender.command(port);
  const child = spawn(exe, argv, { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (chunk) => (stderr += chunk));
  const deadline = Date.now() + 20_000;
  while (!/Listening at: /.test(stderr)) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error(`${contender.name} did not start:\n${stderr}`);
    await sleep(50);
  }
  return {
    child,
    pid: Number(/Listening at: \S+ \((\d+)\)/.exec(stderr)?.[1] ?? child.pid),
    url: `http://127.0.0.1:${port}`,
    stop: async () => {
      child.kill('SIGTERM');
      const killer = setTimeout(() => child.kill('SIGKILL'), 10_000);
      await new Promise((resolve) => (child.exitCode !== null ? resolve(null) : child.once('exit', resolve)));
      clearTimeout(killer);
    },
  };
}

/** RSS of a process and all its descendants, in MB (cluster workers are separate processes). */
export function treeRssMb(pid: number): number {
  let total = 0;
  const visit = (p: number) => {
    try {
      const status = readFileSync(`/proc/${p}/status`, 'utf8');
      total += Number(/VmRSS:\s+(\d+)/.exec(status)?.[1] ?? 0);
      const children = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const child of children ? children.split(/\s+/) : []) visit(Number(child));
    } catch {
      // gone
    }
  };
  visit(pid);
  return total / 1024;
}

/**
 * CPU seconds (user + system, every thread) a process and all its descendants have used so far. Steadier
 * than req/s on a shared machine: divided by the requests served it gives CPU per request, which does not
 * depend on how much of the machine the load generator left over.
 */
export function treeCpuSeconds(pid: number): number {
  let ticks = 0;
  const visit = (p: number) => {
    try {
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      // Fields after the command name (which may hold spaces): utime and stime are the 12th and 13th.
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      ticks += Number(fields[11]) + Number(fields[12]);
      const children = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const child of children ? children.split(/\s+/) : []) visit(Number(child));
    } catch {
      // gone
    }
  };
  visit(pid);
  return ticks / CLOCK_TICKS_PER_SECOND;
}
/** Linux's USER_HZ, 100 on every common build (`getconf CLK_TCK`). */
const CLOCK_TICKS_PER_SECOND = 100;

/** Samples RSS while `work` runs; returns its result and the peak. */
export async function withPeakRss<T>(pid: number, work: () => Promise<T>): Promise<{ result: T; peakMb: number }> {
  let peakMb = treeRssMb(pid);
  const timer = setInterval(() => (peakMb = Math.max(peakMb, treeRssMb(pid))), 100);
  try {
    return { result: await work(), peakMb };
  } finally {
    clearInterval(timer);
  }
}

export interface LoadResult {
  rps: number;
  p99Ms: number;
  errors: number;
}

export function toMs(text: string): number {
  const match = /^([\d.]+)(us|ms|s|m)$/.exec(text);
  if (!match) return NaN;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 'ms' ? value : match[2] === 's' ? value * 1000 : value * 60_000;
}

/** `headers`: wrk's own `-H` arguments, e.g. `['-H', 'Connection: close']` for a new connection per request. */
export function runWrk(url: string, connections: number, durationS: number, timeoutS = 10, headers: string[] = []): Promise<LoadResult> {
  // Each wrk process holds its connections' fds: split large counts over several processes.
  const processes = Math.ceil(connections / 10_000);
  const runs = Array.from({ length: processes }, (_, i) => {
    const share = Math.floor(connections / processes) + (i < connections % processes ? 1 : 0);
    return new Promise<string>((resolve) => {
      const child = spawn('wrk', ['-t', '2', '-c', String(share), '-d', `${durationS}s`, '--timeout', `${timeoutS}s`, '--latency', ...headers, url], {
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      let out = '';
      child.stdout.on('data', (chunk) => (out += chunk));
      child.stderr.on('data', (chunk) => (out += chunk));
      child.on('close', () => resolve(out));
    });
  });
  return Promise.all(runs).then((outputs) => {
    let rps = 0;
    let errors = 0;
    let p99Ms = 0;
    for (const out of outputs) {
      const requests = Number(/(\d+) requests in/.exec(out)?.[1] ?? 0);
      const socketErrors = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(out);
      const non2xx = Number(/Non-2xx or 3xx responses: (\d+)/.exec(out)?.[1] ?? 0);
      const failed = (socketErrors ? socketErrors.slice(1).reduce((sum, n) => sum + Number(n), 0) : 0) + non2xx;
      // ok requests per second: what was answered 2xx over the run
      rps += Math.max(0, requests - non2xx) / durationS;
      errors += failed;
      p99Ms = Math.max(p99Ms, toMs(/\s99%\s+(\S+)/.exec(out)?.[1] ?? 'NaN'));
      if (!requests) process.stderr.write(`wrk said:\n${out}\n`);
    }
    return { rps, p99Ms, errors };
  });
}

/** Replaces the `<!-- region:begin -->` … `<!-- region:end -->` part of a Markdown file with `table`. */
export function writeRegion(file: string, region: string, table: string): void {
  const doc = path.resolve(ROOT, file);
  const marker = `<!-- ${region}:begin -->`;
  const end = `<!-- ${region}:end -->`;
  let current = existsSync(doc) ? readFileSync(doc, 'utf8') : '';
  if (!current.includes(marker)) current += `\n${marker}\n${end}\n`;
  const updated = current.replace(new RegExp(`${marker}[\\s\\S]*${end}`), `${marker}\n${table}\n${end}`);
  writeFileSync(doc, updated);
  process.stderr.write(`wrote ${doc}\n`);
}
