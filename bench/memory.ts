/**
 * Memory of a deployment, summed over every process it runs (from /proc/PID/smaps_rollup): PSS (shared
 * pages split between the processes that map them) and anonymous memory (heaps, stacks: what the
 * deployment itself allocated). grainbows at -w 1, 2, 4 and 8 beside node:cluster with as many workers and
 * three floors, idle and holding 2,000 and 10,000 idle keep-alive connections. The floors are one process
 * with as many threads each holding an idle http.Server: plain worker threads; the shape grainbows is
 * built to (one piscina pool per thread, comlink and msgpackr loaded); and plain threads with grainbows'
 * modules loaded (main's in main, an actor's in each thread) serving nothing, what grainbows' code weighs
 * before any state. Connections are measured settled, as idle is (SETTLE_MS after they opened), and 1 s
 * after they opened. grainbows is split into its launcher (where there is one) and the server, and each
 * actor's V8 heap is read from `ctl --json status`.
 *
 *   npm run bench:memory                         # prints the tables
 *   npm run bench:memory -- --write docs/performance.md
 *   npm run bench:memory -- --quick              # -w 4 only
 */
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
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
 * How long a deployment idles before it is measured, at start and again once connections are open: past
 * grainbows' `--heap-trim-after` (10 s) and its retries 5 s apart (shared/idle-heap-trim.ts), so each is
 * measured as it idles for good (node's own memory reducer trims the cluster's and the floors' heaps by
 * then too). A crowd of idle keep-alive connections stays for minutes; what a deployment holds 1 s after
 * they opened is measured too, and includes the young generation their burst grew.
 */
const SETTLE_MS = 25_000;

/**
 * PSS splits a page between every process that maps it, and node's binary (about 100 MB, most of what a
 * node process maps from files) is mapped by every node process on the machine: this bench's own, the
 * client holding the connections, a test suite running beside. Each deployment runs on a copy of the binary
 * of its own, so that its pages are split between its own processes only, as where it runs alone. Sharing
 * them with the bench would take half of a one-process deployment's binary pages off its figure and a
 * sixth of a five-process cluster's.
 */
const NODE = privateNodeBinary();

function privateNodeBinary(): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-memory-node-'));
  const copy = path.join(dir, path.basename(process.execPath));
  copyFileSync(process.execPath, copy);
  chmodSync(copy, 0o755);
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return copy;
}

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
  kind: 'grainbows' | 'cluster' | 'floor' | 'shape-floor' | 'code-floor';
  size: number;
  /** By connections held, settled. */
  memory: Map<number, Memory>;
  /** By connections held, 1 s after they opened. */
  opened: Map<number, Memory>;
  /** grainbows only: the launcher and the server apart, idle. */
  launcher?: Memory;
  server?: Memory;
  heaps?: Array<{ used: number; total: number }>;
}

async function measure(contender: Contender, kind: Row['kind'], size: number, pidfile?: string): Promise<Row> {
  process.stderr.write(`${contender.name}\n`);
  const running: Running = await start(contender);
  const row: Row = { deployment: contender.name, kind, size, memory: new Map(), opened: new Map() };
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
      row.opened.set(count, treeMemory(root));
      await sleep(SETTLE_MS);
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
        command: (port) => ({ exe: NODE, argv: [CLI, '-b', `127.0.0.1:${port}`, '-w', String(size), '-p', pidfile, APP] }),
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
        command: (port) => ({ exe: NODE, argv: [path.join(ROOT, 'bench/baselines/cluster.js'), String(port), String(size)] }),
      },
      'cluster',
      size,
    ),
  );
  rows.push(
    await measure(
      {
        name: `floor: ${size} worker threads, one process`,
        command: (port) => ({ exe: NODE, argv: [path.join(ROOT, 'bench/baselines/thread-floor.js'), String(port), String(size)] }),
      },
      'floor',
      size,
    ),
  );
  rows.push(
    await measure(
      {
        name: `floor of the shape: ${size} piscina pools of one thread, comlink, msgpackr`,
        command: (port) => ({ exe: NODE, argv: [path.join(ROOT, 'bench/baselines/thread-floor.js'), String(port), String(size), 'shape'] }),
      },
      'shape-floor',
      size,
    ),
  );
  rows.push(
    await measure(
      {
        name: `floor with grainbows' code: ${size} worker threads, one process`,
        command: (port) => ({ exe: NODE, argv: [path.join(ROOT, 'bench/baselines/thread-floor.js'), String(port), String(size), 'grainbows'] }),
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
  'Each deployment runs on a copy of the node binary of its own, so that its PSS does not depend on the other node processes of the machine. Connections: settled (25 s after they opened, as idle is), in parentheses 1 s after they opened.',
);
lines.push('');
lines.push(
  '| deployment | idle PSS | idle anonymous | PSS, 2,000 connections | PSS, 10,000 connections | idle PSS ÷ cluster | PSS 2,000 ÷ cluster | PSS 10,000 ÷ cluster |',
);
lines.push('|---|---:|---:|---:|---:|---:|---:|---:|');
for (const row of rows) {
  const cluster = rows.find((other) => other.kind === 'cluster' && other.size === row.size);
  const held = (count: number) => {
    const settled = row.memory.get(count)?.pssMb;
    const opened = row.opened.get(count)?.pssMb;
    return settled === undefined ? '' : `${mb(settled)} (${opened?.toFixed(0) ?? ''})`;
  };
  const vs = (count: number) => {
    if (row.kind === 'cluster') return '';
    const settled = ratio(row.memory.get(count)?.pssMb, cluster?.memory.get(count)?.pssMb);
    return count === 0 ? settled : `${settled} (${ratio(row.opened.get(count)?.pssMb, cluster?.opened.get(count)?.pssMb)})`;
  };
  lines.push(
    `| ${row.deployment} | ${mb(row.memory.get(0)?.pssMb)} | ${mb(row.memory.get(0)?.anonMb)} | ${held(2000)} | ${held(10_000)} | ${vs(0)} | ${vs(2000)} | ${vs(10_000)} |`,
  );
}
lines.push('');
lines.push('What the connections add to the idle deployment, settled (PSS):');
lines.push('');
lines.push('| `-w` / workers | grainbows: 2,000 | node:cluster: 2,000 | grainbows: 10,000 | node:cluster: 10,000 | 10,000: grainbows ÷ cluster |');
lines.push('|---:|---:|---:|---:|---:|---:|');
for (const size of SIZES) {
  const added = (kind: Row['kind'], count: number) => {
    const row = rows.find((other) => other.kind === kind && other.size === size);
    const [idle, held] = [row?.memory.get(0)?.pssMb, row?.memory.get(count)?.pssMb];
    return idle === undefined || held === undefined ? undefined : held - idle;
  };
  const plus = (value: number | undefined) => (value === undefined ? '' : `+${value.toFixed(0)} MB`);
  lines.push(
    `| ${size} | ${plus(added('grainbows', 2000))} | ${plus(added('cluster', 2000))} | ${plus(added('grainbows', 10_000))} | ${plus(added('cluster', 10_000))} | ${ratio(added('grainbows', 10_000), added('cluster', 10_000))} |`,
  );
}
lines.push('');
lines.push(
  'grainbows idle, split: the launcher (0 where the CLI restarts node in place; a process of its own on Windows and without koffi), the server, and each actor’s V8 heap (used / total).',
);
lines.push('');
lines.push(
  '| deployment | launcher PSS / anonymous | server PSS / anonymous | anonymous per actor added (per thread: floor; floor of the shape; floor with the code) | actor heaps, MB |',
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
  const floorAdded = [perAdded('floor', row.size), perAdded('shape-floor', row.size), perAdded('code-floor', row.size)].filter(Boolean).join('; ');
  lines.push(
    `| ${row.deployment} | ${mb(row.launcher?.pssMb)} / ${mb(row.launcher?.anonMb)} | ${mb(row.server?.pssMb)} / ${mb(row.server?.anonMb)} | ${added}${floorAdded ? ` (${floorAdded})` : ''} | ${(row.heaps ?? []).map((heap) => `${heap.used.toFixed(1)}/${heap.total.toFixed(1)}`).join(', ')} |`,
  );
}
const table = lines.join('\n');
process.stdout.write(`${table}\n`);
if (writeTo) writeRegion(writeTo, 'bench-memory', table);
