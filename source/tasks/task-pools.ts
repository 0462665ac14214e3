/**
 * The task pool (`--tasks`): heavy and blocking work beside the actors, so that one request computing for
 * 200 ms does not freeze the hundreds of sleepy ones its actor multiplexes. gunicorn's dirty arbiters, on
 * piscina: each task module gets a piscina of its own threads (actors/task-thread.ts), run at a lower OS
 * priority than the actors (`--task-nice`) so that light requests preempt heavy work and heavy work still
 * takes every idle cycle.
 *
 * Main only routes calls (source/tasks/task-link.ts): a call's values move between threads without a copy,
 * and a generator's values go from the task thread straight to the actor that asked. With
 * `--task-isolation process` the workers are child processes instead (task-processes.ts), behind the same
 * TaskWorkers face.
 */
import { randomUUID } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { setTimeout as sleep } from 'node:timers/promises';
import { BroadcastChannel, type ResourceLimits, type Transferable } from 'node:worker_threads';
import { Piscina } from 'piscina';
import { GrainbowsError } from '../../shared/errors.js';
import { describeError, type Logger, type LogLevel } from '../../shared/log.js';
import {
  LIST_EXPORTS,
  TaskError,
  thrownValueOf,
  type TaskCallMessage,
  type TaskCatalog,
  type TaskThreadCall,
  type TaskThreadData,
  type TaskThreadResult,
} from '../../shared/task-protocol.js';
import type { TaskModuleSpec } from './task-modules.js';
import { TaskProcesses } from './task-processes.js';
import type { TaskIsolation } from '../../shared/settings-values.js';

const TASK_THREAD_ENTRY = new URL('../../actors/task-thread.js', import.meta.url).href;
const TASK_PROCESS_ENTRY = new URL('../../actors/task-process.js', import.meta.url).href;
/** How long a closing pool's threads get to run their taskThreadExit hooks (a hook that flushes a model or a log may take a while). */
const EXIT_HOOKS_MS = 5000;

export interface TaskPoolsOptions {
  modules: TaskModuleSpec[];
  /** `--task-max-queue`: calls waiting for a thread, per module, beyond which calls are refused; 0 = no limit. */
  maxQueue: number;
  /** `--task-timeout` in milliseconds (enforced by the caller's actor, told through the catalog); 0 = none. */
  timeoutMs: number;
  /** `--task-graceful-timeout` in milliseconds: how long a closing or reloaded pool's calls get to finish. */
  gracefulTimeoutMs: number;
  /** `--task-nice`: how much lower than the actors' the task threads' OS priority is (0 = the same). */
  nice: number;
  /** `--task-isolation`: threads (piscina) or child processes. */
  isolation: TaskIsolation;
  /** The config file whose taskThreadInit and taskThreadExit hooks the task threads run. */
  hooksFile: string | null;
  logLevel: LogLevel;
  resourceLimits?: ResourceLimits;
  env?: Record<string, string>;
  log: Logger;
  /** Told of every call that ran or was refused, with how long it took (StatsD). */
  onCallEnd?: (outcome: TaskOutcomeName, ms: number) => void;
}

/** How a call ended, as counted. */
export type TaskOutcomeName = 'completed' | 'failed' | 'timedOut' | 'refused' | 'cancelled' | 'threadExited';

/** One task module's counters, kept across reloads so that totals never go back. */
export interface TaskCounters {
  completed: number;
  /** The task threw (or its generator did). */
  failed: number;
  /** Ended for passing `--task-timeout` (their threads replaced). */
  timedOut: number;
  /** Refused at once: the queue was at `--task-max-queue`. */
  refused: number;
  /** Their caller gave up (an AbortSignal) before they ended. */
  cancelled: number;
  /** Their thread died under them (process.exit, out of memory). */
  threadExited: number;
  /** Task threads started, replacements included. */
  threadsStarted: number;
}

export interface TaskModuleStats extends TaskCounters {
  module: string;
  threads: number;
  queued: number;
  running: number;
  /** Milliseconds a call ran, and waited for a thread, by piscina's histograms (0 before any call). */
  runTimeMs: { p50: number; p99: number; mean: number };
  waitTimeMs: { p50: number; p99: number; mean: number };
}

function emptyCounters(): TaskCounters {
  return { completed: 0, failed: 0, timedOut: 0, refused: 0, cancelled: 0, threadExited: 0, threadsStarted: 0 };
}

type Summary = { p50: number; p99: number; mean: number };

/** A task module's workers, threads or processes: what ModulePool runs calls on. */
interface TaskWorkers {
  /** Rejects when the signal fires or the worker running the call dies (the worker is replaced). */
  run(call: TaskThreadCall, options: { signal: AbortSignal; transferList: Transferable[] }): Promise<TaskThreadResult>;
  readonly threadCount: number;
  summary(): { runTimeMs: Summary; waitTimeMs: Summary };
  /** Runs every worker's taskThreadExit hook; resolves when all have, or after `timeoutMs`. */
  runExitHooks(timeoutMs: number): Promise<void>;
  destroy(): Promise<void>;
}

/** `--task-isolation thread`: a piscina of exactly `threads`, at the lower priority. */
class PiscinaWorkers implements TaskWorkers {
  private readonly piscina: Piscina<TaskThreadCall, TaskThreadResult>;
  private readonly channelName = `grainbows-tasks-${randomUUID()}`;

  constructor(spec: TaskModuleSpec, data: Omit<TaskThreadData, 'closingChannel'>, counters: TaskCounters, options: TaskPoolsOptions) {
    this.piscina = new Piscina<TaskThreadCall, TaskThreadResult>({
      filename: TASK_THREAD_ENTRY,
      minThreads: spec.threads,
      maxThreads: spec.threads,
      idleTimeout: Infinity,
      // An idle task thread's event loop keeps turning (timers, sockets a module keeps): docs/design.md, pitfall 5.
      atomics: 'disabled',
      workerData: { ...data, closingChannel: this.channelName } satisfies TaskThreadData,
      ...(options.nice > 0 ? { niceIncrement: options.nice } : {}),
      ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
      ...(options.env ? { env: options.env } : {}),
    });
    this.piscina.on('workerCreate', () => counters.threadsStarted++);
    // A thread that dies between calls: piscina replaces it; say so rather than crash main on an unheard 'error'.
    this.piscina.on('error', (error: unknown) => options.log.error(`task module ${spec.name}: a thread failed: ${describeError(error)}`));
  }

  run(call: TaskThreadCall, { signal, transferList }: { signal: AbortSignal; transferList: Transferable[] }): Promise<TaskThreadResult> {
    return this.piscina.run(call, { signal, transferList: transferList as never });
  }

  get threadCount(): number {
    return this.piscina.threads.length;
  }

  summary(): { runTimeMs: Summary; waitTimeMs: Summary } {
    const histogram = this.piscina.histogram;
    const summary = (of: typeof histogram.runTime) => (Number.isFinite(of.mean) ? { p50: of.p50, p99: of.p99, mean: of.mean } : { p50: 0, p99: 0, mean: 0 });
    return { runTimeMs: summary(histogram.runTime), waitTimeMs: summary(histogram.waitTime) };
  }

  async runExitHooks(timeoutMs: number): Promise<void> {
    const channel = new BroadcastChannel(this.channelName);
    let acknowledged = 0;
    const threads = this.piscina.threads.length;
    const allDone = new Promise<void>((resolve) => {
      channel.onmessage = (event) => {
        if ((event as MessageEvent).data && ++acknowledged >= threads) resolve();
      };
    });
    channel.postMessage('closing');
    await Promise.race([allDone, sleep(timeoutMs, undefined, { ref: false })]);
    channel.close();
  }

  destroy(): Promise<void> {
    return this.piscina.destroy();
  }
}

/** One module's workers, and the calls it has in flight. */
class ModulePool {
  inFlight = 0;
  private closing = false;
  private settled: (() => void) | undefined;

  private constructor(
    readonly spec: TaskModuleSpec,
    readonly exports: string[],
    private readonly workers: TaskWorkers,
    private readonly counters: TaskCounters,
    private readonly options: TaskPoolsOptions,
  ) {}

  /** Starts the module's workers and lists its functions; E_TASK_LOAD when it does not load. */
  static async start(spec: TaskModuleSpec, counters: TaskCounters, options: TaskPoolsOptions): Promise<ModulePool> {
    const data = { moduleUrl: spec.url, moduleName: spec.name, hooksFile: options.hooksFile, logLevel: options.logLevel };
    const workers: TaskWorkers =
      options.isolation === 'process'
        ? new TaskProcesses({
            entry: TASK_PROCESS_ENTRY,
            data: { ...data, closingChannel: '' },
            processes: spec.threads,
            nice: options.nice,
            ...(options.resourceLimits ? { resourceLimits: options.resourceLimits } : {}),
            ...(options.env ? { env: options.env } : {}),
            log: options.log,
            onStart: () => counters.threadsStarted++,
          })
        : new PiscinaWorkers(spec, data, counters, options);
    let listed: TaskThreadResult;
    try {
      listed = await workers.run({ fn: LIST_EXPORTS, args: [] }, { signal: new AbortController().signal, transferList: [] });
    } catch (error) {
      await workers.destroy();
      const where =
        error instanceof SyntaxError || (error instanceof Error && error.name === 'SyntaxError')
          ? (await import('../../shared/syntax-error.js')).locateSyntaxError(spec.url)
          : undefined;
      throw new GrainbowsError('E_TASK_LOAD', `failed to load task module ${spec.display}${where ? ` (${where})` : ''}: ${describeError(error)}`, {
        cause: error,
      });
    }
    const exports = listed.ok ? (listed.value as string[]) : [];
    if (exports.length === 0) {
      await workers.destroy();
      throw new GrainbowsError('E_TASK_LOAD', `task module ${spec.display} exports no functions`);
    }
    return new ModulePool(spec, exports, workers, counters, options);
  }

  async run(message: TaskCallMessage, signal: AbortSignal): Promise<TaskThreadResult> {
    const name = `${this.spec.name}:${message.fn}`;
    if (this.closing) return failure(new TaskError('E_TASK_POOL_CLOSED', `task pool closed: ${name} was not run`));
    if (this.options.maxQueue > 0 && this.inFlight - this.spec.threads >= this.options.maxQueue) {
      this.count('refused', 0);
      return failure(
        new TaskError('E_TASK_QUEUE_FULL', `task queue full: ${this.options.maxQueue} calls of ${this.spec.name} already wait (--task-max-queue)`),
      );
    }
    const call: TaskThreadCall = { fn: message.fn, args: message.args, ...(message.stream ? { stream: message.stream } : {}) };
    const transferList: Transferable[] = [...message.transfer, ...(message.stream ? [message.stream] : [])];
    this.inFlight++;
    const started = performance.now();
    const took = () => performance.now() - started;
    try {
      const result = await this.workers.run(call, { signal, transferList });
      this.count(result.ok ? 'completed' : 'failed', took());
      return result;
    } catch (error) {
      if (signal.aborted && signal.reason === 'timeout') {
        this.count('timedOut', took());
        return failure(new TaskError('E_TASK_TIMEOUT', `${name} passed --task-timeout; its thread was replaced`));
      }
      if (signal.aborted) {
        this.count('cancelled', took());
        return failure(new TaskError('E_TASK_CANCELLED', `${name} was cancelled by its caller`));
      }
      if (this.closing) return failure(new TaskError('E_TASK_POOL_CLOSED', `task pool closed while ${name} waited or ran`));
      this.count('threadExited', took());
      return failure(new TaskError('E_TASK_THREAD_EXITED', `the thread running ${name} died (${describeError(error)}); it was replaced`));
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.settled?.();
    }
  }

  private count(outcome: TaskOutcomeName, ms: number): void {
    this.counters[outcome]++;
    this.options.onCallEnd?.(outcome, ms);
  }

  stats(): TaskModuleStats {
    return {
      module: this.spec.name,
      threads: this.workers.threadCount,
      queued: Math.max(this.inFlight - this.spec.threads, 0),
      running: Math.min(this.inFlight, this.spec.threads),
      ...this.counters,
      ...this.workers.summary(),
    };
  }

  /**
   * Takes no more calls; lets those in flight finish for `graceMs` at most, runs each thread's
   * taskThreadExit hook, then ends the threads (calls still running then end with E_TASK_POOL_CLOSED).
   */
  async close(graceMs: number): Promise<void> {
    this.closing = true;
    if (this.inFlight > 0) {
      const finished = new Promise<void>((resolve) => (this.settled = resolve));
      await Promise.race([finished, sleep(graceMs, undefined, { ref: false })]);
      if (this.inFlight > 0)
        this.options.log.warning(`task module ${this.spec.name}: --task-graceful-timeout with ${this.inFlight} calls unfinished; ending them`);
    }
    if (this.options.hooksFile) await this.workers.runExitHooks(EXIT_HOOKS_MS);
    await this.workers.destroy();
  }
}

function failure(error: Error): TaskThreadResult {
  return { ok: false, error: thrownValueOf(error) };
}

export class TaskPools {
  private readonly counters = new Map<string, TaskCounters>();

  private constructor(
    private pools: Map<string, ModulePool>,
    private options: TaskPoolsOptions,
  ) {}

  /** Starts every module's threads; rejects with E_TASK_LOAD (and starts none) when one does not load. */
  static async start(options: TaskPoolsOptions): Promise<TaskPools> {
    const pools = new TaskPools(new Map(), options);
    pools.pools = await pools.startAll(options);
    for (const pool of pools.pools.values())
      options.log.info(`Task module ${pool.spec.name}: ${pool.spec.threads} threads, functions ${pool.exports.join(', ')}`);
    return pools;
  }

  /** What the actors are told: the modules, their functions and the timeout. */
  get catalog(): TaskCatalog {
    return { modules: [...this.pools.values()].map((pool) => ({ name: pool.spec.name, exports: pool.exports })), timeoutMs: this.options.timeoutMs };
  }

  /** Runs one call an actor asked for; never rejects (how it ended is the result). */
  run(message: TaskCallMessage, signal: AbortSignal): Promise<TaskThreadResult> {
    const pool = this.pools.get(message.module);
    if (!pool) return Promise.resolve(failure(new TaskError('E_TASK_UNKNOWN', `no task module '${message.module}'`)));
    return pool.run(message, signal);
  }

  stats(): TaskModuleStats[] {
    return [...this.pools.values()].map((pool) => pool.stats());
  }

  /**
   * New threads import every task module afresh, with `options` (the module list may have changed); calls
   * from now on go to them. Resolves once they serve, with the old threads' retirement: those finish their
   * calls within `--task-graceful-timeout`. If a module does not load, the old pools serve on and this
   * rejects with E_TASK_LOAD.
   */
  async reload(options: TaskPoolsOptions): Promise<{ retired: Promise<void> }> {
    const fresh = await this.startAll(options);
    const old = [...this.pools.values()];
    const graceMs = this.options.gracefulTimeoutMs;
    this.pools = fresh;
    this.options = options;
    return { retired: Promise.all(old.map((pool) => pool.close(graceMs))).then(() => {}) };
  }

  /** Lets running calls finish (for `--task-graceful-timeout` at most, or `graceMs`), then ends every task thread. */
  async close(graceMs: number = this.options.gracefulTimeoutMs): Promise<void> {
    await Promise.all([...this.pools.values()].map((pool) => pool.close(graceMs)));
  }

  private async startAll(options: TaskPoolsOptions): Promise<Map<string, ModulePool>> {
    const started = await Promise.allSettled(options.modules.map((spec) => ModulePool.start(spec, this.countersOf(spec.name), options)));
    const failed = started.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failed) {
      await Promise.all(started.flatMap((result) => (result.status === 'fulfilled' ? [result.value.close(0)] : [])));
      throw failed.reason;
    }
    return new Map(
      started.map((result) => [(result as PromiseFulfilledResult<ModulePool>).value.spec.name, (result as PromiseFulfilledResult<ModulePool>).value]),
    );
  }

  private countersOf(name: string): TaskCounters {
    let counters = this.counters.get(name);
    if (!counters) this.counters.set(name, (counters = emptyCounters()));
    return counters;
  }
}
