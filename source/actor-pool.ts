/**
 * The actors: a piscina pool whose every task is one long-lived actor.
 *
 * piscina is set up for tasks that last as long as a connection's owner does (handoff.md, pitfall 5):
 * `atomics: 'disabled'` so an idle thread's event loop keeps turning, `minThreads === maxThreads` so each
 * actor task gets a thread of its own, no `signal` on `run()`, and an 'error' handler. Each actor gets a
 * data port (msgpack frame batches) and a control port (comlink: ready, stats, stop).
 */
import { EventEmitter } from 'node:events';
import { MessageChannel, type MessagePort, type ResourceLimits } from 'node:worker_threads';
import * as Comlink from 'comlink';
import { Piscina } from 'piscina';
import type { ActorControl, ActorExit, ActorSettings, ActorStats, ActorTask, BootResult } from '../actors/actor.js';
import type { AppSpec } from './app-spec.js';
import type { AppKind } from '../actors/app-loader.js';
import { ActorLink } from './actor-link.js';
import { GrainbowsError } from './errors.js';
import type { Logger } from './log.js';

const ACTOR_ENTRY = new URL('../actors/actor.js', import.meta.url).href;

/** A replacement actor that fails to boot this many times in a row stops the server instead of looping. */
const MAX_CONSECUTIVE_BOOT_FAILURES = 3;

export interface PoolOptions {
  size: number;
  app: AppSpec;
  settings: ActorSettings;
  log: Logger;
  /** Where the actors' access log lines go (only called when settings.accessLogFormat is set). */
  onAccessLine?: (line: string) => void;
  /** Passed to each actor thread (piscina's `resourceLimits`). */
  resourceLimits?: ResourceLimits;
}

type ActorState = 'booting' | 'ready' | 'stopping' | 'gone';

export class Actor {
  state: ActorState = 'booting';
  /** What kind of app the actor detected, once booted. */
  appKind?: AppKind;
  readonly startedAt = Date.now();
  exited!: Promise<void>;

  constructor(
    readonly id: number,
    readonly link: ActorLink,
    readonly control: Comlink.Remote<ActorControl>,
    private readonly controlPort: MessagePort,
  ) {}

  get connectionCount(): number {
    return this.link.connectionCount;
  }

  /** Ends our side of both ports. */
  detach(): void {
    this.state = 'gone';
    this.link.abandonAll();
    this.controlPort.close();
  }
}

export interface PoolEvents {
  'slot-freed': [];
  'actor-exit': [actor: Actor, error: Error | null];
  fatal: [error: GrainbowsError];
}

export class ActorPool extends EventEmitter<PoolEvents> {
  private readonly piscina: Piscina<ActorTask, ActorExit>;
  private readonly actors = new Set<Actor>();
  private nextActorId = 1;
  private closing = false;
  private consecutiveBootFailures = 0;
  private rotation = 0;

  constructor(private readonly options: PoolOptions) {
    super();
    this.piscina = new Piscina<ActorTask, ActorExit>({
      filename: ACTOR_ENTRY,
      minThreads: options.size,
      maxThreads: options.size,
      concurrentTasksPerWorker: 1,
      atomics: 'disabled',
      idleTimeout: Number.MAX_SAFE_INTEGER,
      resourceLimits: options.resourceLimits,
    });
    this.piscina.on('error', (error: unknown) => options.log.error(`actor pool: ${String(error)}`));
  }

  /** Boots every actor; rejects with the app's load error if they cannot start. */
  async start(): Promise<void> {
    const booted = await Promise.allSettled(Array.from({ length: this.options.size }, () => this.startActor()));
    const failure = booted.find((result): result is PromiseRejectedResult => result.status === 'rejected');
    if (failure) throw failure.reason;
  }

  get size(): number {
    return this.actors.size;
  }

  /** The ready actor with the fewest connections, below `cap`; undefined when all are full. */
  pick(cap: number): Actor | undefined {
    let best: Actor | undefined;
    const candidates = [...this.actors];
    // Start the scan at a rotating offset so ties spread across actors instead of piling on the first.
    this.rotation = (this.rotation + 1) % Math.max(candidates.length, 1);
    for (let i = 0; i < candidates.length; i++) {
      const actor = candidates[(i + this.rotation) % candidates.length];
      if (actor.state !== 'ready' || actor.connectionCount >= cap) continue;
      if (!best || actor.connectionCount < best.connectionCount) best = actor;
    }
    return best;
  }

  /** The app kinds the ready actors detected. */
  kinds(): AppKind[] {
    return [...this.actors].flatMap((actor) => (actor.appKind ? [actor.appKind] : []));
  }

  async stats(): Promise<Array<ActorStats & { generation: number; state: ActorState }>> {
    const ready = [...this.actors].filter((actor) => actor.state === 'ready');
    return Promise.all(ready.map(async (actor) => ({ ...(await actor.control.stats()), generation: 1, state: actor.state })));
  }

  async close(): Promise<void> {
    this.closing = true;
    await Promise.all(
      [...this.actors].map(async (actor) => {
        actor.state = 'stopping';
        await Promise.race([actor.control.stop(), actor.exited]).catch(() => {});
        await actor.exited;
      }),
    );
    await this.piscina.destroy();
  }

  private async startActor(): Promise<Actor> {
    const id = this.nextActorId++;
    const data = new MessageChannel();
    const control = new MessageChannel();
    const link = new ActorLink(
      data.port1,
      () => this.emit('slot-freed'),
      ({ level, message }) => this.options.log[level](`[actor ${id}] ${message}`),
      this.options.onAccessLine,
    );
    const started = new Actor(id, link, Comlink.wrap<ActorControl>(control.port1 as unknown as Comlink.Endpoint), control.port1);
    this.actors.add(started);
    const task: ActorTask = { actorId: id, app: this.options.app, dataPort: data.port2, controlPort: control.port2, settings: this.options.settings };
    const run = this.piscina.run(task, { transferList: [data.port2, control.port2] });
    started.exited = run.then(
      () => this.onActorExit(started, null),
      (error: unknown) => this.onActorExit(started, error instanceof Error ? error : new Error(String(error))),
    );
    // A worker that dies while booting never answers ready(): race it against the task's end.
    const boot = await Promise.race([
      started.control.ready(),
      run.then(
        (): BootResult => ({ ok: false, code: 'E_APP_LOAD', message: `actor ${id} stopped while booting`, detail: '' }),
        (error: unknown): BootResult => ({ ok: false, code: 'E_APP_LOAD', message: `actor ${id} died while booting: ${String(error)}`, detail: '' }),
      ),
    ]);
    if (!boot.ok) {
      this.consecutiveBootFailures++;
      await Promise.race([started.control.stop(), started.exited]).catch(() => {});
      await started.exited;
      started.detach();
      this.actors.delete(started);
      const error = new GrainbowsError(boot.code, boot.message);
      if (boot.detail) this.options.log.debug(boot.detail);
      throw error;
    }
    this.consecutiveBootFailures = 0;
    started.state = 'ready';
    started.appKind = boot.kind;
    this.options.log.info(`Booted actor ${id} (${boot.kind} app)`);
    this.emit('slot-freed');
    return started;
  }

  private onActorExit(actor: Actor, error: Error | null): void {
    const wasServing = actor.state === 'ready';
    this.actors.delete(actor);
    if (actor.state !== 'gone') actor.detach();
    this.emit('actor-exit', actor, error);
    if (!wasServing || this.closing) return;
    this.options.log.error(`actor ${actor.id} exited unexpectedly${error ? `: ${error.message}` : ''}; starting a replacement`);
    void this.replace();
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
