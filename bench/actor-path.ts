/**
 * The relay actor's per-request cost in isolation, for A/B work on it: the actor's own server
 * (createActorServer + ConnectionHost, default settings, the bench app) fed by a stand-in main thread over a
 * MessageChannel in the same thread, 32 keep-alive connections, one request in flight on each. No wrk, no
 * real socket, no scheduler between threads: what is left is the actor's code (plus the stand-in's
 * packing and unpacking of the frames).
 *
 * Prints CPU µs per request (median of the runs; still ±20 % on a shared machine) and heap bytes allocated
 * per request (from V8's --trace-gc-nvp; nearly deterministic, so it shows small changes CPU time cannot),
 * and the same allocation figure for node:http serving the same app to wrk, for comparison.
 *
 *   npm run bench:actor                  # 5 runs of 200,000 requests
 *   npm run bench:actor -- --runs 9
 */
import { spawn } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';
import type { RequestListener } from 'node:http';
import http from 'node:http';
import { Duplex } from 'node:stream';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { ROOT, freePort, runWrk } from './harness.js';

const REQUESTS = 200_000;
const WARM_UP = 50_000;
const CONNECTIONS = 32;
const SELF = fileURLToPath(import.meta.url);

/** Sums the `allocated=` bytes of every GC that V8 reported with --trace-gc-nvp. */
function allocatedBytes(trace: string): number {
  let total = 0;
  for (const match of trace.matchAll(/ allocated=(\d+)/g)) total += Number(match[1]);
  return total;
}

function runChild(argv: string[]): Promise<{ stdout: string; trace: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--trace-gc-nvp', ...argv], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (chunk) => (out += chunk));
    child.stderr.on('data', (chunk) => (err += chunk));
    child.on('exit', (code) => {
      if (code === 0)
        resolve({
          stdout: out
            .split('\n')
            .filter((line) => line.startsWith('RESULT '))
            .join('\n'),
          trace: out,
        });
      else reject(new Error(`${argv.join(' ')} exited ${code}: ${err}`));
    });
  });
}

/** The measured loop, in the child: prints `RESULT <cpu µs per request>`. */
async function actorPath(): Promise<void> {
  const floor = process.argv.includes('floor');
  // The relay path with Node's own header and request deadlines in place of ArrivalDeadlines
  // (actors/arrival-deadlines.ts says why the relay keeps its own): the same settings, kept by Node's sets.
  const nodeDeadlines = process.argv.includes('node-deadlines');
  const { ConnectionHost } = await import('../actors/connection-host.js');
  const { RequestSlots } = await import('../actors/request-slots.js');
  const { RequestMetrics, requestMetricsBuffer } = await import('../shared/request-metrics.js');
  const { createActorServer, startNodeDeadlines } = await import('../actors/request-pipeline.js');
  const { DrainMode } = await import('../actors/drain.js');
  const { generationFrom } = await import('../source/server.js');
  const { createLogger } = await import('../shared/log.js');
  const { Frame, FrameBatcher, decodeBatch } = await import('../shared/wire.js');
  const app = (await import(pathToFileURL(path.join(ROOT, 'bench/app.js')).href)).default as RequestListener;
  const { settings } = generationFrom({ app: path.join(ROOT, 'bench/app.js'), cwd: ROOT });
  const slots = new RequestSlots(new SharedArrayBuffer(4), REQUESTS, () => {});
  const server = createActorServer({ kind: 'listener', listener: app }, settings, {
    log: createLogger('warning'),
    counters: { inFlight: 0, served: 0, afterResponse() {} },
    slots,
    metrics: new RequestMetrics(requestMetricsBuffer()),
    drain: new DrainMode(),
    hooks: {},
    actorId: 1,
  });
  const { port1: actorPort, port2: mainPort } = new MessageChannel();
  if (floor) serveFloor(actorPort, app, FrameBatcher, decodeBatch, Frame);
  else {
    if (nodeDeadlines) startNodeDeadlines(server);
    const deadlines = nodeDeadlines
      ? { headerTimeoutMs: 0, bodyTimeoutMs: 0 }
      : { headerTimeoutMs: settings.headerTimeout * 1000, bodyTimeoutMs: settings.bodyTimeout * 1000 };
    new ConnectionHost(actorPort, server, slots, deadlines, settings.compat);
  }
  const main = new FrameBatcher(mainPort);
  const request = Buffer.from('GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n\r\n');
  const unacknowledged = new Map<number, number>();
  let answered = 0;
  let sent = 0;
  let startCpu = process.cpuUsage();
  const send = (id: number) => {
    sent++;
    main.push(Frame.Data, id, new Uint8Array(request));
  };
  await new Promise<void>((resolve) => {
    mainPort.on('message', (batch: ArrayBuffer) =>
      decodeBatch(batch, (type, id, payload) => {
        if (type !== Frame.Data) return;
        // Acknowledge as main does, so the actor's credit window never closes.
        const owed = (unacknowledged.get(id) ?? 0) + (payload as Uint8Array).byteLength;
        if (owed >= 64 * 1024) {
          main.push(Frame.Ack, id, owed);
          unacknowledged.set(id, 0);
        } else unacknowledged.set(id, owed);
        answered++;
        if (answered === WARM_UP) startCpu = process.cpuUsage();
        if (answered === REQUESTS) resolve();
        else if (sent < REQUESTS) send(id);
      }),
    );
    for (let id = 1; id <= CONNECTIONS; id++) {
      main.push(Frame.Open, id, { remoteAddress: '127.0.0.1', remotePort: 40_000 + id, remoteFamily: 'IPv4', localAddress: '127.0.0.1', localPort: 8000 });
      send(id);
    }
  });
  const cpu = process.cpuUsage(startCpu);
  process.stdout.write(`RESULT ${(cpu.user + cpu.system) / (REQUESTS - WARM_UP)}\n`);
  process.exit(0);
}

/**
 * The floor of the same path: plain node:http over a bare Duplex per connection, fed and answered through
 * the same frames, with none of grainbows' actor code (no coroutine, credit window, slots, rules or timers).
 */
function serveFloor(
  port: MessagePort,
  app: RequestListener,
  Batcher: typeof import('../shared/wire.js').FrameBatcher,
  decode: typeof import('../shared/wire.js').decodeBatch,
  frame: typeof import('../shared/wire.js').Frame,
): void {
  const batcher = new Batcher(port);
  const server = http.createServer({ keepAliveTimeout: 75_000, requestTimeout: 0 }, app);
  class FrameSocket extends Duplex {
    constructor(readonly id: number) {
      super();
    }
    override _read(): void {}
    override _write(chunk: Buffer, _encoding: BufferEncoding, callback: () => void): void {
      batcher.push(frame.Data, this.id, chunk);
      callback();
    }
    override _writev(chunks: Array<{ chunk: Buffer }>, callback: () => void): void {
      const nonEmpty = chunks.filter(({ chunk }) => chunk.byteLength > 0);
      if (nonEmpty.length > 0) batcher.push(frame.Data, this.id, nonEmpty.length === 1 ? nonEmpty[0].chunk : Buffer.concat(nonEmpty.map(({ chunk }) => chunk)));
      callback();
    }
  }
  const sockets = new Map<number, FrameSocket>();
  port.on('message', (message: unknown) =>
    decode(message as ArrayBuffer, (type, id, payload) => {
      if (type === frame.Open) {
        const socket = new FrameSocket(id);
        sockets.set(id, socket);
        server.emit('connection', socket);
      } else if (type === frame.Data) {
        const bytes = payload as Uint8Array;
        sockets.get(id)?.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
      }
    }),
  );
}

async function nodeHttpAllocation(): Promise<number> {
  const port = await freePort();
  const child = spawn(process.execPath, ['--trace-gc-nvp', path.join(ROOT, 'bench/baselines/node-http.js'), String(port)], {
    cwd: ROOT,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let trace = '';
  child.stdout.on('data', (chunk) => (trace += chunk));
  await new Promise<void>((resolve) => child.stderr.on('data', (chunk: Buffer) => /Listening at/.test(String(chunk)) && resolve()));
  const before = allocatedBytes(trace);
  const seconds = 5;
  const { rps } = await runWrk(`http://127.0.0.1:${port}/`, 64, seconds);
  const bytes = allocatedBytes(trace) - before;
  child.kill('SIGTERM');
  await new Promise((resolve) => child.once('exit', resolve));
  return bytes / (rps * seconds);
}

if (process.argv.includes('--child')) {
  await actorPath();
} else {
  const runsArg = process.argv.indexOf('--runs');
  const runs = runsArg === -1 ? 5 : Number(process.argv[runsArg + 1]);
  const variants = [
    { name: 'relay actor path in one thread (actor + stand-in main)', argv: [SELF, '--child'] },
    { name: 'its floor: plain node:http over a bare Duplex, same frames', argv: [SELF, '--child', 'floor'] },
    { name: "relay actor path, Node's own header/request deadlines instead of ArrivalDeadlines", argv: [SELF, '--child', 'node-deadlines'] },
  ];
  const cpu = variants.map((): number[] => []);
  const allocation = variants.map((): number[] => []);
  // Interleaved, so a noisy minute on the shared machine falls on both.
  for (let run = 0; run < runs; run++) {
    for (const [index, variant] of variants.entries()) {
      const { stdout, trace } = await runChild(variant.argv);
      cpu[index].push(Number(stdout.split(' ')[1]));
      allocation[index].push(allocatedBytes(trace) / REQUESTS);
      process.stderr.write(
        `run ${run + 1} ${['actor', 'floor', 'node deadlines'][index]}: ${cpu[index].at(-1)!.toFixed(2)} µs CPU/req, ${allocation[index].at(-1)!.toFixed(0)} bytes/req\n`,
      );
    }
  }
  const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor((values.length - 1) / 2)];
  const pairedGap = median(cpu[0].map((value, run) => value - cpu[1][run]));
  const deadlineGap = median(cpu[2].map((value, run) => value - cpu[0][run]));
  const nodeHttp = await nodeHttpAllocation();
  process.stdout.write(
    [
      `| ${REQUESTS.toLocaleString('en')} hello requests, ${CONNECTIONS} connections, median of ${runs} runs | CPU µs/req | heap bytes allocated/req |`,
      '|---|---:|---:|',
      ...variants.map(
        ({ name }, index) =>
          `| ${name} | ${median(cpu[index]).toFixed(2)} (${Math.min(...cpu[index]).toFixed(2)}–${Math.max(...cpu[index]).toFixed(2)}) | ${median(allocation[index]).toFixed(0)} |`,
      ),
      `| grainbows' own code (actor − floor; CPU: median of the paired differences) | ${pairedGap.toFixed(2)} | ${(median(allocation[0]) - median(allocation[1])).toFixed(0)} |`,
      `| Node's deadlines − ArrivalDeadlines (median of the paired differences) | ${deadlineGap.toFixed(2)} | ${(median(allocation[2]) - median(allocation[0])).toFixed(0)} |`,
      `| node:http under wrk, 64 connections (whole process) | | ${nodeHttp.toFixed(0)} |`,
      '',
    ].join('\n'),
  );
}
