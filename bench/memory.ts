/**
 * Memory of a deployment, summed over every process it runs (from /proc/PID/smaps_rollup): PSS (shared
 * pages split between the processes that map them) and anonymous memory (heaps, stacks: what the
 * deployment itself allocated). grainbows at -w 1, 2, 4 and 8 beside node:cluster with as many workers and
 * a floor (one process, as many worker threads each holding an idle http.Server), idle and holding 2,000
 * and 10,000 idle keep-alive connections. A second floor loads grainbows' modules too (main's in main,
 * an actor's in each thread) and serves with them nothing: what grainbows' code weighs, before any state. grainbows is split into its launcher (where there is one) and
 * the server, and each actor's V8 heap is read from `ctl --json status`.
 *
 *   npm run bench:memory                         # prints the tables
 *   npm run bench:memory -- --write docs/performance.md
 *   npm run bench:memory -- --quick              # -w 4 only
 */
import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { APP, CLI, ROOT, start, writeRegion, type Contender, type Running } from './harness.js';

const args = process.argv.slice(2);
const quick = args.includes('--quick');
const writeTo = args.includes('--write') ? args[args.indexOf('--write') + 1] : undefined;
const SIZES = quick ? [4] : [1, 2, 4, 8];
const HOLDS = [0, 2000, 10_000];
/**
 * How long a deployment idles before it is measured: past grainbows' `--heap-trim-after` (10 s) and its
 * retry 5 s later (shared/idle-heap-trim.ts), so each is measured as it idles for good (node's own memory
 * reducer trims the cluster's and the floor's heaps by then too).
 */
const SETTLE_MS = 20_000;

interface Memory {
  pssMb: number;
  anonMb: number;
}

/** PSS and anonymous memory of a process and all its descendants, in MB. */
function treeMemory(pid: number): Memory {
  const total: Memory = { pssMb: 0, anonMb: 0 };
  const visit = (p: number) => {
    try {
      const rollup = readFileSync(`/proc/${p}/smaps_rollup`, 'utf8');
      total.pssMb += Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) / 1024;
      total.anonMb += Number(/^Anonymous:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) / 1024;
      const children = readFileSync(`/proc/${p}/task/${p}/children`, 'utf8').trim();
      for (const child of children ? children.split(/\s+/) : []) visit(Number(child));
    } catch {
      // gone
    }
  };
  visit(pid);
  return total;
}

/** Memory of `pid` alone (not its descendants). */
function ownMemory(pid: number): Memory {
  try {
    const rollup = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
    return {
      pssMb: Number(/^Pss:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) / 1024,
      anonMb: Number(/^Anonymous:\s+(\d+)/m.exec(rollup)?.[1] ?? 0) / 1024,
    };
  } catch {
    return { pssMb: 0, anonMb: 0 };
  }
}

/** Each actor's V8 heap (used / total, MB), as `ctl --json status` reports it. */
function actorHeaps(pidfile: string): Array<{ used: number; total: number }> {
  const status = spawnSync(process.execPath, [CLI, 'ctl', '--pid', pidfile, '--json', 'status'], { encoding: 'utf8' });
  if (status.status !== 0) return [];
  const { actors } = JSON.parse(status.stdout).result as { actors: Array<{ heapUsed: number; heapTotal: number }> };
  return actors.map((actor) => ({ used: actor.heapUsed / 2 ** 20, total: actor.heapTotal / 2 ** 20 }));
}

/** Opens `count` idle keep-alive connections from a child process; resolves with a function that closes them. */
async function hold(url: string, count: number): Promise<() => Promise<void>> {
  const child = spawn(process.execPath, [path.join(ROOT, 'dist/bench/hold.js'), url, String(count)], { stdio: ['pipe', 'pipe', 'inherit'] });
  await new Promise<void>((resolve) => child.stdout.on('data', (chunk: Buffer) => /held/.test(chunk.toString()) && resolve()));
  return async () => {
    child.stdin.end();
    await new Promise((resolve) => child.once('exit', resolve));
  };
}

interface Row {
  deployment: string;
  kind: 'grainbows' | 'cluster' | 'floor' | 'code-floor';
  size: number;
  /** By connections held. */
  memory: Map<number, Memory>;
  /** grainbows only: the launcher and the server apart, idle. */
  launcher?: Memory;
  server?: Memory;
  heaps?: Array<{ used: number; total: number }>;
}

async function measure(contender: Contender, kind: Row['kind'], size: number, pidfile?: string): Promise<Row> {
  process.stderr.write(`${contender.name}\n`);
  const running: Running = await start(contender);
  const row: Row = { deployment: contender.name, kind, size, memory: new Map() };
  try {
    await sleep(SETTLE_MS);
    const root = running.child.pid!;
    row.memory.set(0, treeMemory(root));
    if (kind === 'grainbows') {
      row.server = treeMemory(running.pid);
      row.launcher = running.pid === root ? { pssMb: 0, anonMb: 0 } : ownMemory(root);
      if (pidfile) row.heaps = actorHeaps(pidfile);
    }
    for (const count of HOLDS.filter((n) => n > 0)) {
      const release = await hold(running.url, count);
      await sleep(1000);
      row.memory.set(count, treeMemory(root));
      await release();
      await sleep(500);
    }
  } finally {
    await running.stop();
  }
  return row;
}

const rows: Row[] = [];
for (const size of SIZES) {
  const pidfile = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-memory-')), 'server.pid');
  rows.push(
    await measure(
      {
        name: `grainbows -w ${size}`,
        command: (port) => ({ exe: process.execPath, argv: [CLI, '-b', `127.0.0.1:${port}`, '-w', String(size), '-p', pidfile, APP] }),
      },
      'grainbows',
      size,
      pidfile,
    ),
  );
  rows.push(
    await measure(
      {
        name: `node:cluster, ${size} workers`,
        command: (port) => ({ exe: process.execPath, argv: [path.join(ROOT, 'bench/baselines/cluster.js'), String(port), String(size)] }),
      },
      'cluster',
      size,
    ),
  );
  rows.push(
    await measure(
      {
        name: `floor: ${size} worker threads, one process`,
        command: (port) => ({ exe: process.execPath, argv: [path.join(ROOT, 'bench/baselines/thread-floor.js'), String(port), String(size)] }),
      },
      'floor',
      size,
    ),
  );
  rows.push(
    await measure(
      {
        name: `floor with grainbows' code: ${size} worker threads, one process`,
        command: (port) => ({ exe: process.execPath, argv: [path.join(ROOT, 'bench/baselines/thread-floor.js'), String(port), String(size), 'grainbows'] }),
      },
      'code-floor',
      size,
    ),
  );
}

const mb = (value: number | undefined) => (value === undefined ? '' : `${value.toFixed(0)} MB`);
const ratio = (a: number | undefined, b: number | undefined) => (a !== undefined && b ? `${(a / b).toFixed(2)}×` : '');
const lines: string[] = [];
lines.push(
  `Machine: ${os.cpus().length} × ${os.cpus()[0]?.model ?? 'cpu'}, Node ${process.versions.node}, bench/app.js. ${new Date().toISOString().slice(0, 10)}.`,
);
lines.push('');
lines.push(
  '| deployment | idle PSS | idle anonymous | PSS, 2,000 connections | PSS, 10,000 connections | idle PSS ÷ cluster | PSS 2,000 ÷ cluster | PSS 10,000 ÷ cluster |',
);
lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const row of rows) {
  const cluster = rows.find((other) => other.kind === 'cluster' && other.size === row.size);
  const at = (count: number) => row.memory.get(count);
  const vs = (count: number) => (row.kind === 'cluster' ? '' : ratio(at(count)?.pssMb, cluster?.memory.get(count)?.pssMb));
  lines.push(
    `| ${row.deployment} | ${mb(at(0)?.pssMb)} | ${mb(at(0)?.anonMb)} | ${mb(at(2000)?.pssMb)} | ${mb(at(10_000)?.pssMb)} | ${vs(0)} | ${vs(2000)} | ${vs(10_000)} |`,
  );
}
lines.push('');
lines.push(
  'grainbows idle, split: the launcher (0 where the CLI restarts node in place; a process of its own on Windows and without koffi), the server, and each actor’s V8 heap (used / total).',
);
lines.push('');
lines.push(
  '| deployment | launcher PSS / anonymous | server PSS / anonymous | anonymous per actor added (floor: per thread; floor with the code: per thread) | actor heaps, MB |',
);
lines.push('|---|---:|---:|---:|---|');
/** Anonymous memory each actor (or floor thread) adds, from the next smaller size measured: what one more costs. */
const perAdded = (kind: Row['kind'], size: number): string => {
  const sized = rows.filter((other) => other.kind === kind).sort((a, b) => a.size - b.size);
  const at = sized.findIndex((other) => other.size === size);
  if (at <= 0) return '';
  const [smaller, larger] = [sized[at - 1], sized[at]];
  return `${(((larger.memory.get(0)?.anonMb ?? 0) - (smaller.memory.get(0)?.anonMb ?? 0)) / (larger.size - smaller.size)).toFixed(1)} MB`;
};
for (const row of rows.filter((candidate) => candidate.kind === 'grainbows')) {
  const added = perAdded('grainbows', row.size);
  const floorAdded = [perAdded('floor', row.size), perAdded('code-floor', row.size)].filter(Boolean).join('; ');
  lines.push(
    `| ${row.deployment} | ${mb(row.launcher?.pssMb)} / ${mb(row.launcher?.anonMb)} | ${mb(row.server?.pssMb)} / ${mb(row.server?.anonMb)} | ${added}${floorAdded ? ` (${floorAdded})` : ''} | ${(row.heaps ?? []).map((heap) => `${heap.used.toFixed(1)}/${heap.total.toFixed(1)}`).join(', ')} |`,
  );
}
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
if (writeTo) writeRegion(writeTo, 'bench-memory', table);
