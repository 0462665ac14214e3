/**
 * A running grainbows server: listeners on the main thread, a pool of actors, and the dispatcher between.
 * Start-up reads top to bottom: resolve the app, choose the hand-off, boot the actors (so a broken app
 * fails before we listen), open the listeners, accept.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import v8 from 'node:v8';
import { parseAppSpec, type AppSpec } from '../shared/app-spec.js';
import { ActorPool, type ActorThread, type GenerationOptions } from './lifecycle/actor-pool.js';
import type { MetricsEndpoint } from './lifecycle/prometheus.js';
import type { ServerStats } from './lifecycle/server-stats.js';
import type { StatsD } from 'hot-shots';
import { closeStatsd, countLogLines, openStatsd, statsdTarget } from '../shared/statsd.js';
import { cleartextHttp2Of, type HandoffStrategy } from '../shared/settings-values.js';
import { parseBind, type BindAddress } from './accept/bind.js';
import { Dispatcher } from './accept/dispatcher.js';
import { GrainbowsError } from '../shared/errors.js';
import { chooseHandoff, transferMechanism } from './handoff/strategy.js';
import { closeListeners, dropTlsConnections, openListeners, renewCertificates, type Listener } from './accept/listeners.js';
import { createLogger, type Logger } from '../shared/log.js';
import type { ResourceLimits } from 'node:worker_threads';
import { compatWanted, type ParserCompat } from '../shared/actor-protocol.js';
import { openLogDestination, type LogDestination } from './log-destination.js';
import { createAddressMatcher } from '../shared/forwarded.js';
import { loadTlsMaterial, placeTls, type TlsPlacement } from './accept/tls.js';
import { alpnProtocols, type ActorTls, type TlsMaterial, type TlsServing } from '../shared/tls-options.js';
import { resolveServeSettings, type ServeSettings } from './config/settings.js';
import type { TaskPools, TaskModuleStats, TaskOutcomeName, TaskPoolsOptions } from './tasks/task-pools.js';
import { resolveTaskModules } from './tasks/task-modules.js';
import { serveTaskPort } from './tasks/task-link.js';
import { trimHeapWhenQuiet } from '../shared/idle-heap-trim.js';

/**
 * What `serve()` takes. Each setting it reads (SERVE_SETTINGS: workers, timeouts, limits, TLS, logs, ...)
 * is an option named as in the settings table (source/config/settings.ts), with the command line's type,
 * default and validation; docs/settings.md describes each one. The rest are the library's own.
 */
export interface ServeOptions extends Partial<Omit<ServeSettings, 'bind'>> {
  /** `MODULE[:EXPORT]`, relative to `cwd`, or an already resolved spec. */
  app: string | AppSpec;
  /** Addresses to listen on (default `127.0.0.1:8000`): as `--bind` spells them, or parsed. */
  bind?: Array<string | BindAddress>;
  /** Where the server logs; default: stderr at `logLevel`. */
  logger?: Logger;
  /**
   * Called after the listeners are open and before any actor loads the app: where the CLI drops root
   * privileges (--user, --group). When given, the server listens first and connections that arrive while
   * the actors boot wait in the main thread.
   */
  afterBind?: () => void | Promise<void>;
  /** A config file whose actor hooks (actorInit, actorExit, preRequest, postRequest) every actor runs. */
  hooksFile?: string;
  /**
   * Binary upgrade (CLI): listen on the sockets a predecessor process hands over instead of `bind`, asked
   * for once the actors are up.
   */
  inheritListeners?: (readsInMain: boolean) => Promise<BindAddress[]>;
  /**
   * Limits for each actor thread. Default: `DEFAULTS.actorResourceLimits`, a 48 MB young generation (V8's
   * own 16 MB semi-spaces, whatever main's are; why is at DEFAULTS below). Pass `{}` for V8's sizing.
   */
  resourceLimits?: ResourceLimits;
  /**
   * The actors' `process.env` (piscina's `env` option). Default: each actor thread gets a copy of the main
   * thread's environment as it is when the actor starts. A reload starts actors with the new value.
   */
  actorEnv?: Record<string, string>;
  /** Where `app`, the task modules and the TLS files are resolved from; default `process.cwd()`. */
  cwd?: string;
  /** Limits for each task thread (`tasks`), e.g. `{ maxOldGenerationSizeMb: 512 }`; default: V8's. */
  taskResourceLimits?: ResourceLimits;
}

/** An actor as the server's events describe it. */
export interface ActorInfo {
  id: number;
  generation: number;
}

export interface ServerEvents {
  'actor-start': [actor: ActorInfo];
  'actor-exit': [actor: ActorInfo, error: Error | null];
  /** An actor that was serving died or was killed for hanging (a replacement is on its way). */
  'actor-crash': [actor: ActorInfo, error: Error | null];
  fatal: [error: GrainbowsError];
}

export interface CloseOptions {
  /** Finish in-flight and queued requests first (at most gracefulTimeout seconds). Default true. */
  graceful?: boolean;
  /** A successor process took over the listening sockets (binary upgrade): leave unix socket paths in place. */
  handingOver?: boolean;
}

/** How often gunicorn.workers is sent (gunicorn's arbiter sends it about once a second). */
const STATSD_WORKERS_EVERY_MS = 1000;

/** The default of every serve() setting (from the settings table), and of each actor's resource limits. */
export const DEFAULTS = Object.freeze({
  ...resolveServeSettings({}),
  // V8's own 16 MB semi-spaces (a young generation of 48 MB: two semi-spaces and the large-object space).
  // They grow to that only under load; with 2 MB ones an actor serving HTTP/2 spent a third of its CPU on
  // scavenges. Main's are smaller (--main-semi-space-size), and V8 sizes each isolate on its own.
  actorResourceLimits: { maxYoungGenerationSizeMb: 48 } satisfies ResourceLimits,
});

/** The parser-compatibility settings, or null when none is on (Node's parser alone). */
/** `--limit-request-field-size`, where 0 means the default (as in gunicorn): the actors get the number itself. */
function fieldSizeOf(settings: ServeSettings): number {
  return settings.limitRequestFieldSize || DEFAULTS.limitRequestFieldSize;
}

function compatFrom(settings: ServeSettings): ParserCompat | null {
  const compat: ParserCompat = {
    gunicorn: settings.httpCompat === 'gunicorn',
    permitObsoleteFolding: settings.permitObsoleteFolding,
    stripHeaderSpaces: settings.stripHeaderSpaces,
    permitUnconventionalHttpMethod: settings.permitUnconventionalHttpMethod,
    casefoldHttpMethod: settings.casefoldHttpMethod,
    fieldSize: fieldSizeOf(settings),
  };
  return compatWanted(compat) ? compat : null;
}

/** What one generation of actors runs, from the options: rebuilt on every reload. Validates the options. */
export function generationFrom(
  options: ServeOptions,
  settings: ServeSettings = resolveServeSettings(options),
  /** HTTPS ended in the actors: what they need for it. */
  tls: ActorTls | null = null,
): GenerationOptions {
  return {
    app: typeof options.app === 'string' ? parseAppSpec(options.app, options.cwd) : options.app,
    resourceLimits: options.resourceLimits ?? DEFAULTS.actorResourceLimits,
    ...(options.actorEnv ? { env: options.actorEnv } : {}),
    maxRequestsJitter: settings.maxRequestsJitter,
    settings: {
      keepAliveTimeoutMs: settings.keepAlive * 1000,
      headLimits: { requestLine: settings.limitRequestLine, fields: settings.limitRequestFields, fieldSize: fieldSizeOf(settings) },
      headerMap: settings.headerMap,
      closeAfterResponse: settings.use === 'sync',
      stickySessions: settings.stickySessions,
      accessLogFormat: settings.accessLogfile ? settings.accessLogformat : null,
      logLevel: settings.logLevel,
      maxRequests: settings.maxRequests,
      hooksFile: options.hooksFile ?? null,
      statsd: statsdTarget(settings.statsdHost, settings.statsdPrefix),
      forwardedAllowIps: settings.forwardedAllowIps,
      requestTimeout: settings.requestTimeout,
      headerTimeout: settings.headerTimeout,
      bodyTimeout: settings.bodyTimeout,
      limitRequestBody: settings.limitRequestBody,
      bufferChunkedBody: settings.bufferChunkedBody,
      bodyMinRate: settings.bodyMinRate,
      compat: compatFrom(settings),
      requestsPerActor: settings.use === 'sync' ? 1 : settings.workerConnections,
      tls,
      h2c: cleartextHttp2Of(settings.http2Cleartext, settings.forwardedAllowIps),
      actors: settings.workers,
      // V8's memory reducer trims quiet heaps itself when it is on.
      heapTrimAfterMs: settings.memoryReducer ? 0 : settings.heapTrimAfter * 1000,
      tasks: null, // the running task pool's catalog, set once it has started

      http2:
        settings.httpProtocols.split(',').includes('h2') || settings.http2Cleartext !== 'off'
          ? {
              maxConcurrentStreams: settings.http2MaxConcurrentStreams,
              initialWindowSize: settings.http2InitialWindowSize,
              maxFrameSize: settings.http2MaxFrameSize,
              maxHeaderListSize: settings.http2MaxHeaderListSize,
            }
          : null,
    },
  };
}

/** What the actors of a generation need to end TLS themselves, when that is where it ends. */
function actorTls(material: TlsMaterial | undefined, placement: TlsPlacement | undefined, settings: ServeSettings): ActorTls | null {
  return material && placement?.where === 'actors' ? tlsServing(material, settings) : null;
}

/** Starts the task pool the settings ask for (`tasks`), or none; its modules load only then (docs/performance.md, Memory). */
async function startTasks(options: ServeOptions, settings: ServeSettings, log: Logger, statsd?: StatsD): Promise<TaskPools | undefined> {
  if (settings.tasks.length === 0) return undefined;
  const { TaskPools } = await import('./tasks/task-pools.js');
  return TaskPools.start(taskPoolOptions(options, settings, log, statsd));
}

/** StatsD's names for how a call ended (`grainbows.tasks.<outcome>`). */
const STATSD_TASK_OUTCOMES: Record<TaskOutcomeName, string> = {
  completed: 'completed',
  failed: 'failed',
  timedOut: 'timed_out',
  refused: 'refused',
  cancelled: 'cancelled',
  threadExited: 'thread_exited',
};

function taskPoolOptions(options: ServeOptions, settings: ServeSettings, log: Logger, statsd?: StatsD): TaskPoolsOptions {
  return {
    ...(statsd
      ? {
          onCallEnd: (outcome: TaskOutcomeName, ms: number) => {
            statsd.increment(`grainbows.tasks.${STATSD_TASK_OUTCOMES[outcome]}`);
            if (outcome !== 'refused') statsd.timing('grainbows.tasks.duration', ms);
          },
        }
      : {}),
    modules: resolveTaskModules(settings.tasks, settings.taskThreads, options.cwd),
    maxQueue: settings.taskMaxQueue,
    timeoutMs: settings.taskTimeout * 1000,
    gracefulTimeoutMs: settings.taskGracefulTimeout * 1000,
    nice: settings.taskNice,
    isolation: settings.taskIsolation,
    hooksFile: options.hooksFile ?? null,
    logLevel: settings.logLevel,
    log,
    ...(options.taskResourceLimits ? { resourceLimits: options.taskResourceLimits } : {}),
    ...(options.actorEnv ? { env: options.actorEnv } : {}),
  };
}

function tlsServing(material: TlsMaterial, settings: ServeSettings): TlsServing {
  return { material, handshakeTimeoutMs: settings.headerTimeout * 1000, alpn: alpnProtocols(settings.httpProtocols) };
}

export class GrainbowsServer extends EventEmitter<ServerEvents> {
  private closing: Promise<void> | undefined;
  private hurry = false;
  private metrics: MetricsEndpoint | undefined;
  private statsd: { client: StatsD; timer: NodeJS.Timeout } | undefined;
  /** The task pool (`tasks`), when there is one; replaced on reload when the setting comes or goes. */
  private tasks: TaskPools | undefined;
  /** Ends main's idle heap trimming (`--heap-trim-after`). */
  private stopTrimming: () => void = () => {};

  private constructor(
    readonly handoff: HandoffStrategy,
    private readonly pool: ActorPool,
    private readonly dispatcher: Dispatcher,
    private readonly listening: Listener[],
    private readonly log: Logger,
    private readonly accessLog: LogDestination | undefined,
    private options: ServeOptions,
    /** Where HTTPS ends; undefined without it. */
    private readonly tlsPlacement: TlsPlacement | undefined,
  ) {
    super();
    const info = (actor: ActorThread): ActorInfo => ({ id: actor.id, generation: actor.generation });
    pool.on('actor-start', (actor) => this.emit('actor-start', info(actor)));
    pool.on('actor-exit', (actor, error) => {
      this.emit('actor-exit', info(actor), error);
      if (actor.crashed) this.emit('actor-crash', info(actor), error);
    });
    pool.on('fatal', (error) => this.emit('fatal', error));
  }

  static async start(options: ServeOptions): Promise<GrainbowsServer> {
    const settings = resolveServeSettings(options);
    const target = statsdTarget(settings.statsdHost, settings.statsdPrefix);
    const baseLog = options.logger ?? createLogger(settings.logLevel);
    const statsd = target ? await openStatsd(target, (error) => baseLog.debug(`statsd: ${error.message}`)) : undefined;
    const log = statsd ? countLogLines(baseLog, statsd) : baseLog;
    const binds = (options.bind ?? settings.bind).map((bind) => (typeof bind === 'string' ? parseBind(bind) : bind));
    if (settings.heapGrowingPercent) {
      // Read by V8 at every major GC, so setting it at start-up, before any actor exists, takes effect everywhere.
      v8.setFlagsFromString(`--heap-growing-percent=${settings.heapGrowingPercent}`);
    }
    // Read when an isolate's heap is set up: this reaches every actor started from now on, not this thread.
    if (!settings.memoryReducer) v8.setFlagsFromString('--no-memory-reducer');
    const secure = await loadTlsMaterial(settings, options.cwd);
    const handoff = await chooseHandoff(settings.handoff);
    const tlsPlacement = secure ? placeTls(handoff, settings) : undefined;
    const generation = generationFrom(options, settings, actorTls(secure, tlsPlacement, settings));
    const accessLog = settings.accessLogfile ? openLogDestination(settings.accessLogfile, 'stdout') : undefined;
    const mechanism = handoff === 'transfer' ? ` (${(await transferMechanism()) === 'copy' ? 'dup()ed descriptors' : 'sockets moved'})` : '';
    log.info(`Using hand-off: ${handoff}${mechanism}, concurrency: ${settings.use}`);
    if (tlsPlacement) log.info(`TLS ends in the ${tlsPlacement.where === 'actors' ? 'actors' : 'main thread'}: ${tlsPlacement.why}`);
    const tlsInMain = secure && tlsPlacement?.where === 'main' ? tlsServing(secure, settings) : undefined;

    // The task pool starts first: the actors are told its modules, and a module that does not load stops
    // start-up before any actor boots.
    const tasks = await startTasks(options, settings, log, statsd);
    generation.settings.tasks = tasks?.catalog ?? null;
    let server: GrainbowsServer | undefined;
    const pool = new ActorPool({
      ...generation,
      size: settings.workers,
      log,
      onAccessLine: accessLog?.write,
      timeout: settings.timeout,
      gracefulTimeout: settings.gracefulTimeout,
      serveTasks: (port) => serveTaskPort(port, () => server?.tasks ?? tasks),
    });
    const dispatcher = new Dispatcher(
      pool,
      handoff,
      generation.settings.requestsPerActor,
      {
        headerTimeoutMs: settings.headerTimeout * 1000,
        proxyFrom: settings.proxyProtocol ? createAddressMatcher(settings.proxyAllowFrom) : null,
      },
      settings.stickySessions,
      cleartextHttp2Of(settings.http2Cleartext, settings.forwardedAllowIps)?.priorKnowledge ? createAddressMatcher(settings.forwardedAllowIps) : null,
    );
    const listen = async () =>
      openListeners(
        options.inheritListeners ? await options.inheritListeners(tlsInMain !== undefined) : binds,
        settings.backlog,
        dispatcher.accept,
        { scheme: secure ? 'https' : 'http', ...(tlsInMain ? { tlsInMain } : {}) },
        settings.umask,
      );
    let listeners: Listener[] = [];
    try {
      // Boot first, so a broken app fails before anything listens; unless privileges drop after binding.
      // Main's TLS offers h2 only if the actors serve it (an app that cannot speak HTTP/2 is served HTTP/1.1).
      const offerWhatActorsServe = () => {
        if (tlsInMain && !pool.servesHttp2) tlsInMain.alpn = tlsInMain.alpn.filter((id) => id !== 'h2');
      };
      if (options.afterBind) {
        listeners = await listen();
        await options.afterBind();
        await pool.start();
        offerWhatActorsServe();
        if (tlsInMain) renewCertificates(listeners, tlsInMain);
      } else {
        await pool.start();
        offerWhatActorsServe();
        listeners = await listen();
      }
    } catch (error) {
      dispatcher.dropWaiting();
      await Promise.all([pool.close(), closeListeners(listeners), tasks?.close(0)]);
      throw error;
    }
    for (const listener of listeners) log.info(`Listening at: ${listener.url} (${process.pid})`);
    pool.announceListening(listeners.flatMap((listener) => listener.server.address() ?? []));
    server = new GrainbowsServer(handoff, pool, dispatcher, listeners, log, accessLog, options, tlsPlacement);
    server.tasks = tasks;
    if (statsd) server.reportToStatsd(statsd);
    // Main's heap is trimmed when the whole server has been quiet (shared/idle-heap-trim.ts), as each actor's.
    const trimAfterMs = generation.settings.heapTrimAfterMs;
    if (trimAfterMs > 0)
      server.stopTrimming = trimHeapWhenQuiet(
        { served: () => pool.requestTotals().count, inFlight: () => pool.requestsInFlight + dispatcher.queued + dispatcher.awaitingHead },
        trimAfterMs,
        log,
        'main: ',
      );
    if (settings.metricsBind) {
      try {
        // prom-client is loaded only with --metrics-bind (docs/performance.md, Memory).
        const { MetricsEndpoint } = await import('./lifecycle/prometheus.js');
        server.metrics = await MetricsEndpoint.open(settings.metricsBind, server, log);
      } catch (error) {
        await server.close({ graceful: false });
        throw error;
      }
    }
    return server;
  }

  /** gunicorn.workers every second, as gunicorn's arbiter sends it, and the task pool's gauges beside it. */
  private reportToStatsd(client: StatsD): void {
    const report = () => {
      client.gauge('gunicorn.workers', this.pool.readyCount);
      const modules = this.tasks?.stats();
      if (!modules?.length) return;
      const sum = (of: (m: TaskModuleStats) => number) => modules.reduce((total, m) => total + of(m), 0);
      client.gauge(
        'grainbows.tasks.threads',
        sum((m) => m.threads),
      );
      client.gauge(
        'grainbows.tasks.running',
        sum((m) => m.running),
      );
      client.gauge(
        'grainbows.tasks.queued',
        sum((m) => m.queued),
      );
    };
    const timer = setInterval(report, STATSD_WORKERS_EVERY_MS).unref();
    report();
    this.statsd = { client, timer };
  }

  /** Where the Prometheus endpoint listens (`--metrics-bind`), e.g. `http://127.0.0.1:9100`; undefined when off. */
  get metricsUrl(): string | undefined {
    return this.metrics?.url;
  }

  /** Which thread ends HTTPS: `actors` (each on the sockets it owns) or `main` (relayed); undefined for plain HTTP. */
  get tlsEndsIn(): TlsPlacement['where'] | undefined {
    return this.tlsPlacement?.where;
  }

  /** Where the server listens, e.g. `http://127.0.0.1:41234` (the real port when 0 was asked for). */
  get urls(): string[] {
    return this.listening.map((listener) => listener.url);
  }

  async stats(): Promise<ServerStats> {
    const actors = await this.pool.stats();
    // Connections still sending their first head wait at main's gate (relay) or at their actor's (transfer).
    return {
      ready: this.ready,
      handoff: this.handoff,
      generation: this.pool.currentGeneration,
      queued: this.dispatcher.queued,
      awaitingHead: this.dispatcher.awaitingHead + actors.reduce((sum, actor) => sum + actor.awaitingHead, 0),
      actors,
      responses: this.pool.requestTotals(),
      actorsStarted: this.pool.startedCount,
      actorEndings: { ...this.pool.endings },
      tasks: this.tasks?.stats() ?? [],
    };
  }

  /**
   * A new generation of actors with the app imported afresh and the given options merged over the current
   * ones; the old generation finishes its requests and retires. Listening addresses and the hand-off do not
   * change. If the new generation cannot start, the old one keeps serving and this rejects with why.
   */
  async reload(changes: Partial<ServeOptions> = {}): Promise<void> {
    const next = { ...this.options, ...changes };
    const settings = resolveServeSettings(next);
    // Every TLS file is read again: a renewed certificate is served by the new generation (or by main's
    // listeners, where TLS ends there); one that does not load fails the reload and the old one serves on.
    const secure = await loadTlsMaterial(settings, next.cwd);
    const generation = generationFrom(next, settings, actorTls(secure, this.tlsPlacement, settings));
    await this.reloadTasks(next, settings);
    generation.settings.tasks = this.tasks?.catalog ?? null;
    const workers = settings.workers;
    if (Boolean(next.certfile) !== Boolean(this.options.certfile)) {
      this.log.warning('reload: listeners do not switch between HTTP and HTTPS on reload (restart, or upgrade with USR2)');
    }
    this.log.info(`Reloading: generation ${this.pool.currentGeneration + 1} with ${workers} actors`);
    await this.pool.reload({ ...generation, size: workers });
    if (secure) {
      const serving = tlsServing(secure, settings);
      if (!this.pool.servesHttp2) serving.alpn = serving.alpn.filter((id) => id !== 'h2');
      renewCertificates(this.listening, serving);
    }
    this.options = next;
    this.log.info(`Reloaded: generation ${this.pool.currentGeneration} serving`);
  }

  /**
   * Fresh task threads import the task modules anew (and the list may have changed): calls from now on go
   * to them while the old threads finish theirs. A module that does not load fails the reload first.
   */
  private async reloadTasks(next: ServeOptions, settings: ServeSettings): Promise<void> {
    if (settings.tasks.length === 0) {
      const old = this.tasks;
      this.tasks = undefined;
      await old?.close();
    } else if (this.tasks) {
      // The old threads' calls finish in the background, within --task-graceful-timeout.
      const { retired } = await this.tasks.reload(taskPoolOptions(next, settings, this.log, this.statsd?.client));
      void retired;
    } else {
      this.tasks = await startTasks(next, settings, this.log, this.statsd?.client);
    }
  }

  /** Grows or shrinks the pool to `workers` actors; removed actors finish their requests first. */
  async resize(workers: number): Promise<void> {
    this.log.info(`Resizing to ${workers} actors`);
    await this.pool.resize(workers);
    this.options = { ...this.options, workers };
  }

  /** Serving: at least one actor ready, and not stopping. */
  get ready(): boolean {
    return this.closing === undefined && this.pool.readyCount > 0;
  }

  /** How many actors the server keeps serving. */
  get workers(): number {
    return this.pool.targetSize;
  }

  /** Reopens the access log file (log rotation: the old file was moved away); the error when it cannot. */
  reopenLogs(): Error | undefined {
    return this.accessLog?.reopen();
  }

  /**
   * Stops listening, then, when graceful (the default), lets the actors finish in-flight and queued
   * requests for at most gracefulTimeout seconds (answering with `Connection: close`) before stopping them.
   */
  close({ graceful = true, handingOver = false }: CloseOptions = {}): Promise<void> {
    // A quick close during a graceful one cuts the wait short.
    if (!graceful) this.hurry = true;
    this.closing ??= this.shutDown(handingOver);
    return this.closing;
  }

  /** `await using server = await serve(...)`: a graceful close when the block ends. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /** The listening sockets, for a binary upgrade to hand to the next process. */
  listeningSockets(): net.Server[] {
    return this.listening.map((listener) => listener.server);
  }

  private async shutDown(handingOver: boolean): Promise<void> {
    const listening = closeListeners(this.listening, { handingOver, warn: (message) => this.log.warning(message) });
    if (!this.hurry) {
      const gracefulTimeout = this.options.gracefulTimeout ?? DEFAULTS.gracefulTimeout;
      const deadline = Date.now() + gracefulTimeout * 1000;
      await this.pool.drainAll(deadline);
      this.dispatcher.stopping();
      let nextReport = Date.now() + 1000;
      while ((this.dispatcher.queued > 0 || this.dispatcher.awaitingHead > 0 || this.pool.connectionCount > 0) && Date.now() < deadline && !this.hurry) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        if (Date.now() >= nextReport) {
          nextReport += 1000;
          this.log.debug(
            `stopping: waiting for ${this.pool.connectionCount} connections, ${this.dispatcher.queued} queued and ${this.dispatcher.awaitingHead} sending their head`,
          );
        }
      }
      if (this.pool.connectionCount > 0) this.log.warning(`graceful timeout (${gracefulTimeout} s): closing ${this.pool.connectionCount} connections`);
    }
    // The actors' requests have had their graceful time, and their calls with them; what still runs gets
    // --task-graceful-timeout (none when hurried).
    await this.tasks?.close(this.hurry ? 0 : undefined);
    this.dispatcher.close();
    await this.pool.close();
    dropTlsConnections(this.listening);
    await listening;
    this.stopTrimming();
    await this.metrics?.close(); // last: the readiness probe says 503 until the very end
    if (this.statsd) {
      clearInterval(this.statsd.timer);
      await closeStatsd(this.statsd.client);
    }
    this.accessLog?.close();
    this.log.debug('server closed');
  }
}
