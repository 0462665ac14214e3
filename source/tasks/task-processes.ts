/**
 * `--task-isolation process`: a task module's workers as child processes (actors/task-process.ts) instead of
 * piscina's threads, so that a native crash (a segfault in an addon, an abort) ends one process and its
 * call, not the server. Calls wait in a queue here and run one at a time per process; a call past its
 * timeout or cancelled while it runs ends its process, as piscina ends a thread; every process that ends
 * is replaced. Arguments and results cross the IPC channel as structured clones (copied).
 *
 * Hand-written rather than a library's: piscina has threads only, and the pool needs the same queue,
 * cancellation and stream protocol as the threads have (shared/task-protocol.ts).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { getPriority, setPriority } from 'node:os';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ResourceLimits } from 'node:worker_threads';
import {
  errorOf,
  type MainToTaskProcess,
  type StreamControl,
  type TaskProcessToMain,
  type TaskThreadCall,
  type TaskThreadData,
  type TaskThreadResult,
} from '../../shared/task-protocol.js';
import type { Logger } from '../../shared/log.js';
import { describeError } from '../../shared/log.js';

export interface TaskProcessOptions {
  entry: string;
  data: TaskThreadData;
  processes: number;
  nice: number;
  resourceLimits?: ResourceLimits;
  env?: Record<string, string>;
  log: Logger;
  /** Called for each process started, replacements included. */
  onStart: () => void;
}

interface QueuedCall {
  call: TaskThreadCall;
  signal: AbortSignal;
  queuedAt: number;
  resolve: (result: TaskThreadResult) => void;
  reject: (error: Error) => void;
}

interface Worker {
  child: ChildProcess;
  ready: boolean;
  running?: QueuedCall & { id: number; startedAt: number };
  exited?: () => void;
}

/** How many recent calls the run and wait time summaries are read from. */
const SAMPLES = 1000;

export class TaskProcesses {
  private readonly workers = new Set<Worker>();
  private readonly queue: QueuedCall[] = [];
  private nextId = 1;
  private destroyed = false;
  private readonly runTimes: number[] = [];
  private readonly waitTimes: number[] = [];

  constructor(private readonly options: TaskProcessOptions) {
    for (let i = 0; i < options.processes; i++) this.spawn();
  }

  get threadCount(): number {
    return this.workers.size;
  }

  /** Runs a call on the next free process. Rejects, as piscina does, when the signal fires or the process dies. */
  run(call: TaskThreadCall, { signal }: { signal?: AbortSignal } = {}): Promise<TaskThreadResult> {
    return new Promise((resolve, reject) => {
      const queued: QueuedCall = { call, signal: signal ?? new AbortController().signal, queuedAt: performance.now(), resolve, reject };
      if (queued.signal.aborted) return reject(abortError(queued.signal));
      queued.signal.addEventListener('abort', () => this.abort(queued), { once: true });
      this.queue.push(queued);
      this.dispatch();
    });
  }

  summary(): { runTimeMs: Summary; waitTimeMs: Summary } {
    return { runTimeMs: summarize(this.runTimes), waitTimeMs: summarize(this.waitTimes) };
  }

  /** Asks every process to run its taskThreadExit hook; resolves when all have, or after `timeoutMs`. */
  async runExitHooks(timeoutMs: number): Promise<void> {
    const acknowledged = [...this.workers].map(
      (worker) =>
        new Promise<void>((resolve) => {
          worker.exited = resolve;
          this.post(worker, { kind: 'closing' });
        }),
    );
    await Promise.race([Promise.all(acknowledged), sleep(timeoutMs, undefined, { ref: false })]);
  }

  /** Ends every process now; calls still running or queued reject. */
  async destroy(): Promise<void> {
    this.destroyed = true;
    for (const queued of this.queue.splice(0)) queued.reject(new Error('the task processes were stopped'));
    const gone = [...this.workers].map(
      (worker) => new Promise<void>((resolve) => (worker.child.exitCode !== null ? resolve() : worker.child.once('exit', () => resolve()))),
    );
    for (const worker of this.workers) worker.child.kill('SIGKILL');
    await Promise.all(gone);
  }

  private spawn(): void {
    const { entry, data, resourceLimits, env, nice } = this.options;
    const execArgv = resourceLimits?.maxOldGenerationSizeMb ? [`--max-old-space-size=${resourceLimits.maxOldGenerationSizeMb}`] : [];
    const child = fork(new URL(entry), [], {
      serialization: 'advanced',
      execArgv,
      env: { ...(env ?? process.env), GRAINBOWS_TASK_DATA: JSON.stringify(data) },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    const worker: Worker = { child, ready: false };
    this.workers.add(worker);
    this.options.onStart();
    if (nice > 0 && child.pid !== undefined) {
      try {
        setPriority(child.pid, Math.min(19, getPriority() + nice));
      } catch (error) {
        this.options.log.warning(`task module ${data.moduleName}: cannot lower a task process's priority: ${describeError(error)}`);
      }
    }
    child.on('message', (message: TaskProcessToMain) => this.onMessage(worker, message));
    child.on('error', (error) => this.options.log.error(`task module ${data.moduleName}: a process failed: ${describeError(error)}`));
    child.on('exit', (code, signal) => this.onExit(worker, code, signal));
  }

  private onMessage(worker: Worker, message: TaskProcessToMain): void {
    const running = worker.running;
    switch (message.kind) {
      case 'ready':
        worker.ready = true;
        this.dispatch();
        return;
      case 'load-failed':
        // The first call (the pool's list of functions) fails with the module's own error.
        for (const queued of this.queue.splice(0)) queued.reject(errorOf(message.error) as Error);
        return;
      case 'item':
        if (running?.id === message.id) running.call.stream?.postMessage(message.item);
        return;
      case 'stream-closed':
        if (running?.id === message.id) running.call.stream?.close();
        return;
      case 'result':
        if (running?.id !== message.id) return;
        worker.running = undefined;
        record(this.runTimes, performance.now() - running.startedAt);
        running.resolve(message.result);
        this.dispatch();
        return;
      case 'exited':
        worker.exited?.();
        return;
    }
  }

  private onExit(worker: Worker, code: number | null, signal: NodeJS.Signals | null): void {
    this.workers.delete(worker);
    worker.exited?.();
    const running = worker.running;
    if (running) {
      worker.running = undefined;
      running.call.stream?.close();
      running.reject(running.signal.aborted ? abortError(running.signal) : new Error(`the task process exited (${signal ?? `code ${code}`})`));
    }
    if (this.destroyed) return;
    this.spawn();
  }

  private dispatch(): void {
    for (const worker of this.workers) {
      if (!worker.ready || worker.running) continue;
      const next = this.queue.shift();
      if (!next) return;
      const id = this.nextId++;
      const startedAt = performance.now();
      record(this.waitTimes, startedAt - next.queuedAt);
      worker.running = { ...next, id, startedAt };
      const { fn, args, stream } = next.call;
      stream?.on('message', (control: StreamControl) => this.post(worker, { kind: 'control', id, control }));
      this.post(worker, { kind: 'call', id, fn, args, stream: stream !== undefined });
    }
  }

  /** A call whose signal fired: out of the queue if it waits; if it runs, its process ends (and is replaced). */
  private abort(queued: QueuedCall): void {
    const at = this.queue.indexOf(queued);
    if (at >= 0) {
      this.queue.splice(at, 1);
      queued.reject(abortError(queued.signal));
      return;
    }
    for (const worker of this.workers) if (worker.running?.resolve === queued.resolve) worker.child.kill('SIGKILL');
  }

  private post(worker: Worker, message: MainToTaskProcess): void {
    if (worker.child.connected) worker.child.send(message);
  }
}

type Summary = { p50: number; p99: number; mean: number };

function record(samples: number[], ms: number): void {
  samples.push(ms);
  if (samples.length > SAMPLES) samples.shift();
}

function summarize(samples: readonly number[]): Summary {
  if (samples.length === 0) return { p50: 0, p99: 0, mean: 0 };
  const sorted = [...samples].sort((a, b) => a - b);
  const at = (q: number) => sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
  return { p50: at(0.5), p99: at(0.99), mean: sorted.reduce((sum, ms) => sum + ms, 0) / sorted.length };
}

function abortError(signal: AbortSignal): Error {
  return Object.assign(new Error('The task was aborted'), { name: 'AbortError', cause: signal.reason });
}
