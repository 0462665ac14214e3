/**
 * The actors, in generations: boot them, pick one for each connection, drain and retire them, replace the
 * ones that crash, hang or reach --max-requests.
 *
 * Each actor is one long-lived piscina task on a piscina of exactly one thread. One piscina per actor rather
 * than one for all, because a piscina has a fixed size and reuses its threads, while we need three things
 * it does not give a shared pool: a new generation on fresh threads (a reused thread keeps the old app in
 * its module cache, so a reload would not reload), growing and shrinking one actor at a time, and
 * terminating exactly the one thread that hangs. Within its piscina, an actor follows docs/design.md, pitfall 5:
 * `atomics: 'disabled'` so an idle thread's event loop keeps turning, no `signal` on `run()`, and an
 * 'error' handler. Each actor gets a data port (msgpack frame batches) and a control port (comlink:
 * ready, stats, drain, stop).
 */
import { EventEmitter } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import { MessageChannel, type MessagePort, type ResourceLimits } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { Piscina } from 'piscina';
import type { ActorControl, ActorExit, ActorSettings, ActorStats, ActorTask, AppKind, BootResult, ListeningAddress } from '../../shared/actor-protocol.js';
import type { AppSpec } from '../../shared/app-spec.js';
import { ActorLink } from '../handoff/actor-link.js';
import type { PeerPortRequest } from '../../shared/wire.js';
import { addTotals, emptyTotals, readRequestMetrics, requestMetricsBuffer, type RequestTotals } from '../../shared/request-metrics.js';
import { GrainbowsError } from '../../shared/errors.js';
import type { Logger } from '../../shared/log.js';

const ACTOR_ENTRY = new URL('../../actors/actor.js', import.meta.url).href;

/** A replacement actor that fails to boot this many times in a row stops the server instead of looping. */
const MAX_CONSECUTIVE_BOOT_FAILURES = 3;
/**
 * How often the watchdog reads the actors' heartbeats (a read of shared memory per actor: cheap). A hang is
 * seen at most timeout + HEARTBEAT_MS + this after it began; at 500 ms, a 1 s timeout plus the replacement's
 * boot brushed the promised "timeout + 1 s" on a busy machine (2,007 ms once in CI).
 */
const WATCHDOG_INTERVAL_MS = 200;
/** How often a draining actor's connection count is checked. */
const DRAIN_POLL_MS = 25;
/** How long an actor told to stop may take before its thread is terminated. */
const STOP_GRACE_MS = 2000;
/** How long `stats()` waits for an actor: one whose event loop is stuck is left out rather than waited for. */
const STATS_TIMEOUT_MS = 2000;

/** What a generation of actors runs: replaced as a whole on reload. */
export interface GenerationOptions {
  app: AppSpec;
  settings: ActorSettings;
  /** Passed to each actor thread (piscina's `resourceLimits`). */
  resourceLimits?: ResourceLimits;
  /** The actor threads' `process.env` (piscina's `env`); when absent they see a copy of the main thread's. */
  env?: Record<string, string>;
  /** `--max-requests-jitter`: each actor's limit is `settings.maxRequests` plus 0..jitter. */
  maxRequestsJitter: number;
}

export interface PoolOptions extends GenerationOptions {
  size: number;
  log: Logger;
  /** Where the actors' access log lines go (only called when settings.accessLogFormat is set). */
  onAccessLine?: (line: string) => void;
  /** Seconds an actor's event loop may stand still before it is terminated and replaced; 0 = never. */
  timeout: number;
  /** Seconds a draining actor gets to finish its requests before its connections are cut. */
  gracefulTimeout: number;
  /**
   * Serves one actor's task port (source/tasks/task-link.ts) and returns what detaches it; called for each
   * actor when its settings name task modules.
   */
  serveTasks?: (port: MessagePort) => () => void;
}

export type ActorState = 'booting' | 'ready' | 'draining' | 'stopping' | 'gone';

/**
 * Main's handle on one actor: its thread (a piscina of one), its ports, and the shared memory it writes
 * (heartbeat, requests in flight, response counters). The actor's own code is actors/actor.ts.
 */
export class ActorThread {
  state: ActorState = 'booting';
  /** What kind of app the actor detected, once booted. */
  appKind?: AppKind;
  /** Whether it serves HTTP/2: asked for, and its app can speak it (actors/http2-sessions.ts). */
  servesHttp2 = false;
  readonly startedAt = Date.now();
  /** Set when the watchdog killed it: its waiting requests are answered 503, not 502. */
  hung = false;
  /** It was serving when it died or was killed: a crash, not a retirement. */
  crashed = false;
  exited!: Promise<void>;
  /** Set once it is being retired (see ActorPool.retire). */
  retiring?: Promise<void>;
  private readonly beat: BigInt64Array;

  constructor(
    readonly id: number,
    readonly generation: number,
    readonly piscina: Piscina<ActorTask, ActorExit>,
    readonly link: ActorLink,
    private readonly control: Comlink.Remote<ActorControl>,
    private readonly controlPort: MessagePort,
    readonly heartbeat: SharedArrayBuffer,
    private readonly requestMetrics: SharedArrayBuffer,
  ) {
    this.beat = new BigInt64Array(heartbeat);
  }

  get connectionCount(): number {
    return this.link.connectionCount;
  }

  /** Requests it is answering now: what `--worker-connections` limits. */
  get requestsInFlight(): number {
    return this.link.requestsInFlight;
  }

  /** Its responses so far, by status class and duration (read from shared memory: no round trip). */
  requestTotals(): RequestTotals {
    return readRequestMetrics(this.requestMetrics);
  }

  /** Milliseconds since the actor's event loop last turned (its last heartbeat). */
  get silentForMs(): number {
    return Date.now() - Number(Atomics.load(this.beat, 0));
  }

  /** Resolves once booted (or failed to); a thread that dies while booting is the task's end, raced by the caller. */
  ready(): Promise<BootResult> {
    return this.control.ready();
  }

  /** Tells it to drain (see ActorControl.drain); resolves once it has, or has ended. */
  async drain(): Promise<void> {
    await this.ask((control) => control.drain());
  }

  /** Its counters, or undefined when it ended, or did not answer within STATS_TIMEOUT_MS (a hung event loop). */
  stats(): Promise<ActorStats | undefined> {
    return this.ask((control) => control.stats(), STATS_TIMEOUT_MS);
  }

  /** Tells it where main listens (the app's start-up hooks run then). */
  async announceListening(addresses: ListeningAddress[]): Promise<void> {
    await this.ask((control) => control.listening(addresses));
  }

  /** Asks it to close its connections and end its task; resolves once it answered or ended. */
  async requestStop(): Promise<void> {
    await this.ask((control) => control.stop());
  }

  /**
   * One control call, settled by the actor's end if comlink has not answered by then: comlink never settles
   * a call whose other side has gone, and an actor closes its control port as its task ends
   * (docs/design.md, pitfall 6). Undefined when the call failed or the actor ended first.
   */
  private ask<T>(call: (control: Comlink.Remote<ActorControl>) => Promise<T>, timeoutMs?: number): Promise<T | undefined> {
    if (this.state === 'gone') return Promise.resolve(undefined);
    const answers = [call(this.control).catch(() => undefined), this.exited.then(() => undefined)];
    if (timeoutMs !== undefined) answers.push(sleep(timeoutMs, undefined, { ref: false }));
    return Promise.race(answers);
  }

  /** Ends our side of both ports; what main still holds for it is answered or closed. */
  detach(): void {
    this.state = 'gone';
    this.link.abandonAll(this.hung ? 503 : 502);
    this.controlPort.close();
  }

  /** Ends the actor's thread, whatever it is doing. */
  terminate(): Promise<void> {
    return this.piscina.destroy().catch(() => {});
  }
}

export interface PoolEvents {
  'slot-freed': [];
  'actor-start': [actor: ActorThread];
  'actor-exit': [actor: ActorThread, error: Error | null];
  fatal: [error: GrainbowsError];
}

export interface PoolActorStats extends ActorStats {
  generation: number;
  state: ActorState;
  responses: RequestTotals;
}

/** How actors have ended since the pool started. */
export interface ActorEndings {
  /** Died while serving: an uncaught exception, process.exit, out of memory. */
  crashed: number;
  /** Terminated by the watchdog (`--timeout`). */
  hung: number;
  /** Retired on purpose: reload, resize, `--max-requests`, stop. */
  retired: number;
}

export class ActorPool extends EventEmitter<PoolEvents> {
  private readonly actors = new Set<ActorThread>();
  /** The responses of actors that have ended, so that totals never go back. */
  private readonly endedTotals = emptyTotals();
  /** Actors started since the pool started, replacements included. */
  startedCount = 0;
  readonly endings: ActorEndings = { crashed: 0, hung: 0, retired: 0 };
  private nextActorId = 1;
  private generation = 1;
  private generationOptions: GenerationOptions;
  private size: number;
  private closing = false;
  private consecutiveBootFailures = 0;
  /** Where main listens, once it does: told to each actor (Fastify's onListen hooks run then). */
  private listeningAddresses: ListeningAddress[] | undefined;
  private readonly watchdog: NodeJS.Timeout | undefined;

  constructor(private readonly options: PoolOptions) {
    super();
    this.size = options.size;
    this.generationOptions = {
      app: options.app,
      settings: options.settings,
      resourceLimits: options.resourceLimits,
      maxRequestsJitter: options.maxRequestsJitter,
      env: options.env,
    };
    if (options.timeout > 0) this.watchdog = setInterval(() => this.checkHeartbeats(), WATCHDOG_INTERVAL_MS).unref();
  }

  /** Main's listeners are open: every actor is told, now and as it starts. */
  announceListening(addresses: ListeningAddress[]): void {
    this.listeningAddresses = addresses;
    for (const actor of this.actors) if (actor.state === 'ready') void actor.announceListening(addresses);
  }

  /** Boots every actor; rejects with the app's load error if they cannot start. */
  async start(): Promise<void> {
    await this.startGeneration(this.size);
  }

  /** How many actors the pool keeps serving (not counting those draining). */
  get targetSize(): number {
    return this.size;
  }

  get currentGeneration(): number {
    return this.generation;
  }

  /** Requests every actor is answering now. */
  get requestsInFlight(): number {
    let count = 0;
    for (const actor of this.actors) count += actor.requestsInFlight;
    return count;
  }

  /** Connections held by every actor, draining ones included. */
  get connectionCount(): number {
    let count = 0;
    for (const actor of this.actors) count += actor.connectionCount;
    return count;
  }

  /** The actors, for placement (source/accept/placement.ts): every state, in start order. */
  placeable(): readonly ActorThread[] {
    return [...this.actors];
  }

  /** Whether every booted actor serves HTTP/2 (none at all: true). */
  get servesHttp2(): boolean {
    return [...this.actors].every((actor) => !actor.appKind || actor.servesHttp2);
  }

  /** The app kinds the ready actors detected. */
  kinds(): AppKind[] {
    return [...this.actors].flatMap((actor) => (actor.appKind ? [actor.appKind] : []));
  }

  async stats(): Promise<PoolActorStats[]> {
    const live = [...this.actors].filter((actor) => actor.state === 'ready' || actor.state === 'draining');
    const answers = await Promise.all(
      live.map(async (actor) => {
        const stats = await actor.stats();
        return stats && { ...stats, generation: actor.generation, state: actor.state, responses: actor.requestTotals() };
      }),
    );
    return answers.filter((answer): answer is PoolActorStats => answer !== undefined);
  }

  /** Every response the actors gave since the pool started, those of ended actors included. */
  requestTotals(): RequestTotals {
    const totals = addTotals(emptyTotals(), this.endedTotals);
    for (const actor of this.actors) addTotals(totals, actor.requestTotals());
    return totals;
  }

  /** The actors serving now (not booting, draining or stopping). */
  get readyCount(): number {
    let count = 0;
    for (const actor of this.actors) if (actor.state === 'ready') count++;
    return count;
  }

  /**
   * A new generation: boot `size` actors with the new options (the app imported afresh on fresh threads),
   * then drain and retire the old ones. If the new generation cannot boot, the old one keeps serving and
   * this rejects with the reason.
   */
  async reload(options: Partial<GenerationOptions> & { size?: number } = {}): Promise<void> {
    const previous = this.generationOptions;
    const previousGeneration = this.generation;
    const old = [...this.actors].filter((actor) => actor.state === 'ready' || actor.state === 'booting');
    this.generationOptions = { ...previous, ...options };
    this.generation++;
    try {
      await this.startGeneration(options.size ?? this.size);
    } catch (error) {
      this.generationOptions = previous;
      this.generation = previousGeneration;
      throw error;
    }
    this.size = options.size ?? this.size;
    await Promise.all(old.map((actor) => this.retire(actor)));
  }

  /** Grows or shrinks the current generation to `size` actors; removed actors drain first (oldest first). */
  async resize(size: number): Promise<void> {
    if (!Number.isInteger(size) || size < 1) throw new GrainbowsError('E_USAGE', `an actor pool needs a whole number ≥ 1 of actors, not ${size}`);
    this.size = size;
    const serving = [...this.actors].filter((actor) => actor.state === 'ready' || actor.state === 'booting');
    if (serving.length < size) {
      await Promise.all(Array.from({ length: size - serving.length }, () => this.startActor()));
    } else if (serving.length > size) {
      const oldestFirst = serving.sort((a, b) => a.startedAt - b.startedAt || a.id - b.id);
      await Promise.all(oldestFirst.slice(0, serving.length - size).map((actor) => this.retire(actor)));
    }
  }

  /**
   * Tells every actor to drain (Connection: close on each response, idle connections closed) while staying
   * pickable: connections still queued in main are accepted requests, and are served before the end. Waits
   * for their answers until `deadline` (epoch ms) at most: an actor whose event loop is stuck never answers.
   */
  async drainAll(deadline: number): Promise<void> {
    const answered = Promise.all([...this.actors].map((actor) => actor.drain()));
    await Promise.race([answered, sleep(Math.max(deadline - Date.now(), 0), undefined, { ref: false })]);
  }

  /** Stops every actor now: their connections are closed (relayed ones answered as in relay.ts). */
  async close(): Promise<void> {
    this.closing = true;
    clearInterval(this.watchdog);
    await Promise.all([...this.actors].map((actor) => this.stop(actor)));
  }

  private async startGeneration(size: number): Promise<void> {
    const booted = await Promise.allSettled(Array.from({ length: size }, () => this.startActor()));
    const failure = booted.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (!failure) return;
    // All or nothing: the actors of this generation that did boot go too.
    await Promise.all(booted.flatMap((result) => (result.status === 'fulfilled' ? [this.stop(result.value)] : [])));
    throw failure.reason;
  }

  /** Drain, wait for its connections to end (at most --graceful-timeout), then stop. Once per actor. */
  private retire(actor: ActorThread): Promise<void> {
    actor.retiring ??= this.drainAndStop(actor);
    return actor.retiring;
  }

  private async drainAndStop(actor: ActorThread): Promise<void> {
    if (actor.state === 'stopping' || actor.state === 'gone') return;
    actor.state = 'draining';
    this.options.log.info(`Retiring actor ${actor.id} (generation ${actor.generation}): draining ${actor.connectionCount} connections`);
    const deadline = Date.now() + this.options.gracefulTimeout * 1000;
    await Promise.race([actor.drain(), sleep(this.options.gracefulTimeout * 1000, undefined, { ref: false })]);
    while (actor.state === 'draining' && actor.connectionCount > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, DRAIN_POLL_MS));
    }
    if (actor.connectionCount > 0 && actor.state === 'draining') {
      this.options.log.warning(
        `actor ${actor.id}: graceful timeout (${this.options.gracefulTimeout} s) with ${actor.connectionCount} connections open; closing them`,
      );
    }
    await this.stop(actor);
  }

  private async stop(actor: ActorThread): Promise<void> {
    if (actor.state === 'gone') return actor.exited;
    actor.state = 'stopping';
    const timer = new Promise((resolve) => setTimeout(resolve, STOP_GRACE_MS).unref());
    await Promise.race([actor.requestStop().then(() => actor.exited), timer]).catch(() => {});
    await actor.terminate();
    await actor.exited;
  }

  private maxRequestsFor(): number {
    const { settings, maxRequestsJitter } = this.generationOptions;
    if (settings.maxRequests === 0) return 0;
    return settings.maxRequests + (maxRequestsJitter > 0 ? Math.floor(Math.random() * (maxRequestsJitter + 1)) : 0);
  }

  private async startActor(): Promise<ActorThread> {
    const id = this.nextActorId++;
    const generation = this.generation;
    const { app, settings, resourceLimits } = this.generationOptions;
    const data = new MessageChannel();
    const control = new MessageChannel();
    const heartbeat = new SharedArrayBuffer(8);
    const requestSlots = new SharedArrayBuffer(4);
    const requestMetrics = requestMetricsBuffer();
    const piscina = new Piscina<ActorTask, ActorExit>({
      filename: ACTOR_ENTRY,
      minThreads: 1,
      maxThreads: 1,
      concurrentTasksPerWorker: 1,
      atomics: 'disabled',
      idleTimeout: Number.MAX_SAFE_INTEGER,
      // An actor's one task runs as long as the actor: piscina's run- and wait-time histograms would say nothing.
      recordTiming: false,
      resourceLimits,
      ...(this.generationOptions.env ? { env: this.generationOptions.env } : {}),
    });
    piscina.on('error', (error: unknown) => this.options.log.error(`actor ${id} thread: ${String(error)}`));
    let started: ActorThread | undefined;
    const link = new ActorLink(
      data.port1,
      requestSlots,
      () => this.emit('slot-freed'),
      ({ level, message }) => this.options.log[level](`[actor ${id}] ${message}`),
      this.options.onAccessLine ?? (() => {}),
      (notice) => {
        if (notice.kind === 'peer-port') this.introduce(id, notice);
        else if (started) void this.recycle(started);
      },
    );
    started = new ActorThread(
      id,
      generation,
      piscina,
      link,
      Comlink.wrap<ActorControl>(control.port1 as unknown as Comlink.Endpoint),
      control.port1,
      heartbeat,
      requestMetrics,
    );
    const actor = started;
    this.actors.add(actor);
    const task: ActorTask = {
      actorId: id,
      app,
      dataPort: data.port2,
      controlPort: control.port2,
      settings: { ...settings, maxRequests: this.maxRequestsFor() },
      heartbeat,
      requestSlots,
      requestMetrics,
    };
    const transferList: MessagePort[] = [data.port2, control.port2];
    let detachTasks = () => {};
    if (settings.tasks && this.options.serveTasks) {
      const tasks = new MessageChannel();
      detachTasks = this.options.serveTasks(tasks.port1);
      task.taskPort = tasks.port2;
      transferList.push(tasks.port2);
    }
    const run = piscina.run(task, { transferList });
    actor.exited = run.then(
      () => this.onActorExit(actor, null),
      (error: unknown) => this.onActorExit(actor, error instanceof Error ? error : new Error(String(error))),
    );
    void actor.exited.then(detachTasks);
    // A worker that dies while booting never answers ready(): race it against the task's end.
    const boot = await Promise.race([
      actor.ready(),
      run.then(
        (): BootResult => ({ ok: false, code: 'E_APP_LOAD', message: `actor ${id} stopped while booting`, detail: '' }),
        (error: unknown): BootResult => ({ ok: false, code: 'E_APP_LOAD', message: `actor ${id} died while booting: ${String(error)}`, detail: '' }),
      ),
    ]);
    if (!boot.ok) {
      this.consecutiveBootFailures++;
      await this.stop(actor);
      if (boot.detail) this.options.log.debug(boot.detail);
      throw new GrainbowsError(boot.code, boot.message);
    }
    this.consecutiveBootFailures = 0;
    if (actor.state !== 'booting') return actor; // retired or stopped while it booted
    actor.state = 'ready';
    actor.appKind = boot.kind;
    actor.servesHttp2 = boot.http2;
    this.options.log.info(`Booted actor ${id} (generation ${generation}, ${boot.kind} app)`);
    if (this.listeningAddresses) void actor.announceListening(this.listeningAddresses);
    this.startedCount++;
    this.emit('actor-start', actor);
    this.emit('slot-freed');
    return actor;
  }

  private onActorExit(actor: ActorThread, error: Error | null): void {
    const wasServing = actor.state === 'ready' && !this.closing;
    actor.crashed = wasServing;
    this.actors.delete(actor);
    addTotals(this.endedTotals, actor.requestTotals());
    if (actor.hung) this.endings.hung++;
    else if (wasServing) this.endings.crashed++;
    else if (actor.appKind) this.endings.retired++; // one that never booted is a boot failure, reported as such
    if (actor.state !== 'gone') actor.detach();
    void actor.terminate(); // piscina would otherwise start a fresh thread in place of a crashed one
    this.emit('actor-exit', actor, error);
    if (!wasServing || this.closing) return;
    const why = actor.hung ? 'was terminated after hanging' : `exited unexpectedly${error ? `: ${error.message}` : ''}`;
    this.options.log.error(`actor ${actor.id} ${why}; starting a replacement`);
    if (actor.generation === this.generation) void this.replace();
  }

  /** The actor served its --max-requests: a fresh one takes its place before it drains. */
  /**
   * Actor `from` forwards requests for the sessions of `request.actorId` (`--sticky-sessions` behind a proxy
   * that mixes clients on one connection): pass it the channel's other end. An actor that has ended gets
   * none, and the channel's closing fails what was forwarded (a new session starts elsewhere).
   */
  private introduce(from: number, request: PeerPortRequest): void {
    const target = [...this.actors].find((actor) => actor.id === request.actorId && (actor.state === 'ready' || actor.state === 'draining'));
    if (target) target.link.introducePeer(from, request.port);
    else request.port.close();
  }

  private async recycle(actor: ActorThread): Promise<void> {
    if (actor.state !== 'ready' || this.closing) return;
    this.options.log.info(`actor ${actor.id} reached its max requests; recycling`);
    actor.state = 'draining'; // no new connections from now on
    try {
      if (actor.generation === this.generation) await this.startActor();
    } catch (error) {
      this.options.log.error(`replacement for recycled actor ${actor.id} failed to boot: ${String(error)}; keeping it`);
      actor.state = 'ready';
      return;
    }
    await this.retire(actor);
  }

  private checkHeartbeats(): void {
    const limitMs = this.options.timeout * 1000;
    for (const actor of this.actors) {
      if ((actor.state !== 'ready' && actor.state !== 'draining') || actor.hung) continue;
      const silentMs = actor.silentForMs;
      if (silentMs <= limitMs) continue;
      actor.hung = true;
      this.options.log.critical(
        `actor ${actor.id} (generation ${actor.generation}) has not turned its event loop for ${(silentMs / 1000).toFixed(1)} s (timeout ${this.options.timeout} s) while serving ${actor.connectionCount} connections; terminating it`,
      );
      void actor.terminate();
    }
  }

  private async replace(): Promise<void> {
    while (!this.closing) {
      try {
        await this.startActor();
        return;
      } catch (error) {
        const bootError = error instanceof GrainbowsError ? error : new GrainbowsError('E_APP_LOAD', String(error));
        if (this.consecutiveBootFailures >= MAX_CONSECUTIVE_BOOT_FAILURES) {
          this.emit('fatal', bootError);
          return;
        }
        this.options.log.error(`replacement actor failed to boot: ${bootError.message}; trying again`);
      }
    }
  }
}
