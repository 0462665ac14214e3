/**
 * A running grainbows server: listeners on the main thread, a pool of actors, and the dispatcher between.
 * Start-up reads top to bottom: resolve the app, choose the hand-off, boot the actors (so a broken app
 * fails before we listen), open the listeners, accept.
 */
import { EventEmitter } from 'node:events';
import type net from 'node:net';
import v8 from 'node:v8';
import { parseAppSpec, type AppSpec } from '../shared/app-spec.js';
import { ActorPool, type ActorThread, type ActorEndings, type GenerationOptions, type PoolActorStats } from './lifecycle/actor-pool.js';
import type { RequestTotals } from '../shared/request-metrics.js';
import { MetricsEndpoint } from './lifecycle/metrics.js';
import type { StatsD } from 'hot-shots';
import { closeStatsd, countLogLines, openStatsd, statsdTarget } from '../shared/statsd.js';
import type { HandoffStrategy } from './handoff/actor-link.js';
import { parseBind, type BindAddress } from './accept/bind.js';
import { Dispatcher } from './accept/dispatcher.js';
import { GrainbowsError } from '../shared/errors.js';
import { chooseHandoff, transferMechanism } from './handoff/handoff.js';
import { closeListeners, openListeners, renewCertificates, type Listener } from './accept/listeners.js';
import { createLogger, type Logger, type LogLevel } from '../shared/log.js';
import type { ResourceLimits } from 'node:worker_threads';
import { DEFAULT_HEAD_LIMITS, type HeaderMap } from '../actors/request-rules.js';
import { DEFAULT_ACCESS_LOG_FORMAT } from '../shared/access-log.js';
import { HTTP_COMPAT_MODES, compatWanted, type HttpCompat, type ParserCompat } from '../actors/request-normalizer.js';
import { openLogDestination, type LogDestination } from './log-destination.js';
import { checkAllowIps, createAddressMatcher } from '../shared/forwarded.js';
import { loadTlsMaterial } from './accept/tls.js';

export interface ServeOptions {
  /** `MODULE[:EXPORT]`, relative to `cwd`, or an already resolved spec. */
  app: string | AppSpec;
  /** Addresses to listen on (default `127.0.0.1:8000`). */
  bind?: Array<string | BindAddress>;
  /** Number of actors (threads). Default 1. */
  workers?: number;
  /**
   * Most requests one actor answers at once. Default 1000. Idle keep-alive connections and connections
   * still sending their first head do not count; past the cap, new connections wait in the main thread.
   */
  workerConnections?: number;
  /**
   * `coroutine` (default): many requests per actor. `sync`: one request per actor at a time, each
   * connection closed after its response (gunicorn's sync worker), for apps that block their thread.
   */
  use?: 'coroutine' | 'sync';
  /** `auto` (default) transfers sockets where the runtime can and relays elsewhere. */
  handoff?: HandoffStrategy | 'auto';
  /** Seconds an idle keep-alive connection stays open. Default 75. */
  keepAlive?: number;
  /** Longest request line in bytes (414 beyond; 0 = no limit). Default 4094. */
  limitRequestLine?: number;
  /** Most header fields (431 beyond; 0 = no limit). Default 100. */
  limitRequestFields?: number;
  /** Longest header field with its CRLF in bytes (431 beyond; 0 = the default, as in gunicorn). Default 8190. */
  limitRequestFieldSize?: number;
  /** Header names with `_`: drop (default), refuse (400) or dangerous (pass through). */
  headerMap?: HeaderMap;
  /**
   * `node` (default): Node's HTTP parser alone judges requests. `gunicorn`: a framer in front of it also
   * accepts what gunicorn's parser accepts by default and Node's refuses: methods Node does not know (an
   * upper-case token), raw non-ASCII bytes in the target, `Transfer-Encoding: identity`, whitespace in
   * chunk extensions. Costs the transfer hand-off its native read path (bytes pass through JavaScript).
   */
  httpCompat?: HttpCompat;
  /** Accept obs-fold continuation lines and join them with a space (gunicorn's permit_obsolete_folding). Default false. */
  permitObsoleteFolding?: boolean;
  /** Remove whitespace between a header name and its colon instead of refusing it (gunicorn's strip_header_spaces). Default false. */
  stripHeaderSpaces?: boolean;
  /** Accept any token as a method, lower case and short ones too (gunicorn's permit_unconventional_http_method). Default false. */
  permitUnconventionalHttpMethod?: boolean;
  /** Upper-case the method before the app sees it (gunicorn's casefold_http_method). Default false. */
  casefoldHttpMethod?: boolean;
  /**
   * Sets V8's `--heap-growing-percent` for the whole process (main and actors) before the actors start.
   * Not set by default for library users, since it is process-wide; the CLI sets 20 (docs/settings.md).
   */
  heapGrowingPercent?: number;
  /**
   * `false` starts the actors without V8's memory reducer (`--no-memory-reducer`, process-wide, for isolates
   * created from then on). The main thread's own reducer can only be turned off on node's command line
   * (relaunch.ts). Left alone by default for library users; the CLI passes `false` (docs/settings.md).
   */
  memoryReducer?: boolean;
  /** Access log: a file to append to, or `-` for stdout. Off when not given. */
  accessLogfile?: string;
  /**
   * Where the Prometheus endpoint listens (HOST:PORT or unix:PATH): `GET /metrics`, and `GET /healthz` for
   * readiness (metrics.ts). Off when not given.
   */
  metricsBind?: string;
  /** Send gunicorn's StatsD metrics over UDP to HOST:PORT (shared/statsd.ts). Off when not given. */
  statsdHost?: string;
  /** Prefix for the StatsD names, joined with a dot: `app` gives `app.gunicorn.requests`. */
  statsdPrefix?: string;
  /** gunicorn's access log format (atoms like `%(h)s`), or `json` for one JSON object per line. */
  accessLogformat?: string;
  /** Seconds an actor's event loop may stand still before it is terminated and replaced; 0 = never. Default 30. */
  timeout?: number;
  /** Seconds draining actors get to finish in-flight requests (reload, resize, recycling, stop). Default 30. */
  gracefulTimeout?: number;
  /**
   * Seconds from a request's head to its response's head: past it the client gets 504, a Fetch app's
   * `request.signal` aborts and a listener app's request closes. Started responses are not cut. 0 = off (default).
   */
  requestTimeout?: number;
  /** Seconds a client gets to send a request head; 408 and close beyond. Default 20. */
  headerTimeout?: number;
  /** Seconds a client gets to send a whole request, head and body; 408 beyond; 0 = no limit. Default 300. */
  bodyTimeout?: number;
  /** Most bytes of request body (413 beyond, chunked bodies counted as they arrive); 0 = no limit (default). */
  limitRequestBody?: number;
  /**
   * Read a chunked request body whole, up to this many bytes (413 beyond), and give it to the app with a
   * Content-Length, for frameworks that ignore bodies without one. 0 = off (default).
   */
  bufferChunkedBody?: number;
  /**
   * Uploads arriving slower than this many bytes a second, measured over 10 s windows in which the app was
   * waiting for the body, are answered 408 (slow-body attacks). 0 = off. Default 100.
   */
  bodyMinRate?: number;
  /** An actor is replaced (gracefully) after this many responses; 0 = never. Default 0. */
  maxRequests?: number;
  /** Adds 0..N to each actor's max requests, so actors do not all recycle at once. Default 0. */
  maxRequestsJitter?: number;
  /**
   * Called after the listeners are open and before any actor loads the app: where the CLI drops root
   * privileges (--user, --group). When given, the server listens first and connections that arrive while
   * the actors boot wait in the main thread.
   */
  afterBind?: () => void | Promise<void>;
  /** A config file whose actor hooks (actorInit, actorExit, preRequest, postRequest) every actor runs. */
  hooksFile?: string;
  /**
   * Peers allowed to set X-Forwarded-For/-Proto/-Host, X-Real-IP and Forwarded: comma-separated IPs or CIDR
   * networks, or `*`. From other peers those headers are removed. Default `127.0.0.1,::1` (as gunicorn).
   */
  forwardedAllowIps?: string;
  /**
   * Binary upgrade (CLI): listen on the sockets a predecessor process hands over instead of `bind`, asked
   * for once the actors are up.
   */
  inheritListeners?: () => Promise<BindAddress[]>;
  /** HTTPS: the certificate chain (PEM file). Needs `keyfile`; both are read again on reload (rotation). */
  certfile?: string;
  /** HTTPS: the private key (PEM file) of `certfile`. */
  keyfile?: string;
  /**
   * Read a PROXY protocol header (v1 or v2) at the start of connections from `proxyAllowFrom` peers, and
   * give the app the client it names. Connections without one are served as they are. Default false.
   */
  proxyProtocol?: boolean;
  /**
   * Main reads each new connection's first request head and hands a connection whose request names an
   * actor's session (socket.io long-polling's `?sid=`, made by `grainbows/socket.io`) to that actor.
   * Connections read in main cannot move unread, so with the transfer hand-off they carry their head along.
   */
  stickySessions?: boolean;
  /** Unix-socket binds get mode 0o777 without these bits (gunicorn's `--umask`); default 0: any local user may connect. */
  umask?: number;
  /** Peers allowed to send a PROXY header (IPs, CIDR networks, `*`); others get 403. Default `127.0.0.1,::1`. */
  proxyAllowFrom?: string;
  /** Listen backlog. Default 2048. */
  backlog?: number;
  logLevel?: LogLevel;
  logger?: Logger;
  /**
   * Limits for each actor thread. Default: an 8 MB young generation. Three isolates (main and two actors)
   * with V8's default young generation held 1.55× the RSS of one node:http process under 5,000 sleeping
   * connections; 8 MB brought that to 1.3× with no measurable cost on hello-world throughput
   * (docs/performance.md). Pass `{}` for V8's defaults.
   */
  resourceLimits?: ResourceLimits;
  /**
   * The actors' `process.env` (piscina's `env` option). Default: each actor thread gets a copy of the main
   * thread's environment as it is when the actor starts. A reload starts actors with the new value.
   */
  actorEnv?: Record<string, string>;
  cwd?: string;
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

export interface ServerStats {
  /** Serving: at least one actor ready, and not stopping (the readiness probe's answer). */
  ready: boolean;
  handoff: HandoffStrategy;
  generation: number;
  /** Connections whose request head arrived, waiting in main for an actor slot. */
  queued: number;
  /** Connections held in main while they send their first request head (they cost no actor slot). */
  awaitingHead: number;
  actors: PoolActorStats[];
  /** Every response the actors gave since the server started, by status class and duration (ended actors' included). */
  responses: RequestTotals;
  /** Actors started since the server started, replacements included. */
  actorsStarted: number;
  /** How actors have ended: crashed, hung (terminated after `timeout`), retired. */
  actorEndings: ActorEndings;
}

export interface CloseOptions {
  /** Finish in-flight and queued requests first (at most gracefulTimeout seconds). Default true. */
  graceful?: boolean;
  /** A successor process took over the listening sockets (binary upgrade): leave unix socket paths in place. */
  handingOver?: boolean;
}

/** How often gunicorn.workers is sent (gunicorn's arbiter sends it about once a second). */
const STATSD_WORKERS_EVERY_MS = 1000;

export const DEFAULTS = {
  bind: '127.0.0.1:8000',
  workers: 1,
  workerConnections: 1000,
  keepAlive: 75,
  backlog: 2048,
  actorResourceLimits: { maxYoungGenerationSizeMb: 8 } satisfies ResourceLimits,
  limitRequestLine: DEFAULT_HEAD_LIMITS.requestLine,
  limitRequestFields: DEFAULT_HEAD_LIMITS.fields,
  limitRequestFieldSize: DEFAULT_HEAD_LIMITS.fieldSize,
  headerMap: 'drop',
  httpCompat: 'node',
  permitObsoleteFolding: false,
  stripHeaderSpaces: false,
  permitUnconventionalHttpMethod: false,
  casefoldHttpMethod: false,
  accessLogformat: DEFAULT_ACCESS_LOG_FORMAT,
  timeout: 30,
  gracefulTimeout: 30,
  maxRequests: 0,
  maxRequestsJitter: 0,
  forwardedAllowIps: '127.0.0.1,::1',
  proxyProtocol: false,
  stickySessions: false,
  proxyAllowFrom: '127.0.0.1,::1',
  requestTimeout: 0,
  headerTimeout: 20,
  bodyTimeout: 300,
  limitRequestBody: 0,
  bufferChunkedBody: 0,
  bodyMinRate: 100,
} as const;

function wholeNumberAtLeast(name: string, value: number, min: number): number {
  if (!Number.isInteger(value) || value < min) throw new GrainbowsError('E_USAGE', `${name} must be a whole number ≥ ${min}, not ${value}`);
  return value;
}

function checkedAllowIps(text: string, setting = 'forwarded allow ips'): string {
  const problem = checkAllowIps(text);
  if (problem) throw new GrainbowsError('E_USAGE', `${setting}: ${problem}`);
  return text;
}

function readDeadlines(options: ServeOptions): { headerTimeout: number; bodyTimeout: number } {
  const headerTimeout = wholeNumberAtLeast('header timeout', options.headerTimeout ?? DEFAULTS.headerTimeout, 1);
  const bodyTimeout = wholeNumberAtLeast('body timeout', options.bodyTimeout ?? DEFAULTS.bodyTimeout, 0);
  if (bodyTimeout > 0 && bodyTimeout < headerTimeout)
    throw new GrainbowsError('E_USAGE', `body timeout (${bodyTimeout} s) must be at least the header timeout (${headerTimeout} s), or 0`);
  return { headerTimeout, bodyTimeout };
}

/** The parser-compatibility settings, or null when none is on (Node's parser alone). */
function readCompat(options: ServeOptions): ParserCompat | null {
  const httpCompat = options.httpCompat ?? DEFAULTS.httpCompat;
  if (!HTTP_COMPAT_MODES.includes(httpCompat))
    throw new GrainbowsError('E_USAGE', `http compat must be one of ${HTTP_COMPAT_MODES.join(', ')}, not ${String(httpCompat)}`);
  const compat: ParserCompat = {
    gunicorn: httpCompat === 'gunicorn',
    permitObsoleteFolding: options.permitObsoleteFolding ?? DEFAULTS.permitObsoleteFolding,
    stripHeaderSpaces: options.stripHeaderSpaces ?? DEFAULTS.stripHeaderSpaces,
    permitUnconventionalHttpMethod: options.permitUnconventionalHttpMethod ?? DEFAULTS.permitUnconventionalHttpMethod,
    casefoldHttpMethod: options.casefoldHttpMethod ?? DEFAULTS.casefoldHttpMethod,
    fieldSize: options.limitRequestFieldSize ?? DEFAULTS.limitRequestFieldSize,
  };
  return compatWanted(compat) ? compat : null;
}

/** What one generation of actors runs, from the options: rebuilt on every reload. */
export function generationFrom(options: ServeOptions, accessLogOn: boolean): GenerationOptions {
  return {
    app: typeof options.app === 'string' ? parseAppSpec(options.app, options.cwd) : options.app,
    resourceLimits: options.resourceLimits ?? DEFAULTS.actorResourceLimits,
    ...(options.actorEnv ? { env: options.actorEnv } : {}),
    maxRequestsJitter: wholeNumberAtLeast('max requests jitter', options.maxRequestsJitter ?? DEFAULTS.maxRequestsJitter, 0),
    settings: {
      keepAliveTimeoutMs: (options.keepAlive ?? DEFAULTS.keepAlive) * 1000,
      headLimits: {
        requestLine: options.limitRequestLine ?? DEFAULTS.limitRequestLine,
        fields: options.limitRequestFields ?? DEFAULTS.limitRequestFields,
        fieldSize: options.limitRequestFieldSize ?? DEFAULTS.limitRequestFieldSize,
      },
      headerMap: options.headerMap ?? DEFAULTS.headerMap,
      closeAfterResponse: options.use === 'sync',
      stickySessions: options.stickySessions ?? DEFAULTS.stickySessions,
      accessLogFormat: accessLogOn ? (options.accessLogformat ?? DEFAULTS.accessLogformat) : null,
      logLevel: options.logLevel ?? 'info',
      maxRequests: wholeNumberAtLeast('max requests', options.maxRequests ?? DEFAULTS.maxRequests, 0),
      hooksFile: options.hooksFile ?? null,
      statsd: statsdTarget(options.statsdHost, options.statsdPrefix),
      forwardedAllowIps: checkedAllowIps(options.forwardedAllowIps ?? DEFAULTS.forwardedAllowIps),
      requestTimeout: wholeNumberAtLeast('request timeout', options.requestTimeout ?? DEFAULTS.requestTimeout, 0),
      ...readDeadlines(options),
      limitRequestBody: wholeNumberAtLeast('limit request body', options.limitRequestBody ?? DEFAULTS.limitRequestBody, 0),
      bufferChunkedBody: wholeNumberAtLeast('buffer chunked body', options.bufferChunkedBody ?? DEFAULTS.bufferChunkedBody, 0),
      bodyMinRate: wholeNumberAtLeast('body min rate', options.bodyMinRate ?? DEFAULTS.bodyMinRate, 0),
      compat: readCompat(options),
      requestsPerActor: options.use === 'sync' ? 1 : wholeNumberAtLeast('worker connections', options.workerConnections ?? DEFAULTS.workerConnections, 1),
    },
  };
}

export class GrainbowsServer extends EventEmitter<ServerEvents> {
  private closing: Promise<void> | undefined;
  private hurry = false;
  private metrics: MetricsEndpoint | undefined;
  private statsd: { client: StatsD; timer: NodeJS.Timeout } | undefined;

  private constructor(
    readonly handoff: HandoffStrategy,
    private readonly pool: ActorPool,
    private readonly dispatcher: Dispatcher,
    private readonly listening: Listener[],
    private readonly log: Logger,
    private readonly accessLog: LogDestination | undefined,
    private options: ServeOptions,
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
    const target = statsdTarget(options.statsdHost, options.statsdPrefix);
    const baseLog = options.logger ?? createLogger(options.logLevel ?? 'info');
    const statsd = target ? openStatsd(target, (error) => baseLog.debug(`statsd: ${error.message}`)) : undefined;
    const log = statsd ? countLogLines(baseLog, statsd) : baseLog;
    const binds = (options.bind ?? [DEFAULTS.bind]).map((bind) => (typeof bind === 'string' ? parseBind(bind) : bind));
    const workers = wholeNumberAtLeast('workers', options.workers ?? DEFAULTS.workers, 1);
    if (options.heapGrowingPercent) {
      // Read by V8 at every major GC, so setting it at start-up, before any actor exists, takes effect everywhere.
      v8.setFlagsFromString(`--heap-growing-percent=${options.heapGrowingPercent}`);
    }
    // Read when an isolate's heap is set up: this reaches every actor started from now on, not this thread.
    if (options.memoryReducer === false) v8.setFlagsFromString('--no-memory-reducer');
    const generation = generationFrom(options, Boolean(options.accessLogfile));
    const secure = loadTlsMaterial(options, options.cwd);
    const handoff = await chooseHandoff(options.handoff ?? 'auto');
    const accessLog = options.accessLogfile ? openLogDestination(options.accessLogfile, 'stdout') : undefined;
    const mechanism = handoff === 'transfer' ? ` (${(await transferMechanism()) === 'copy' ? 'dup()ed descriptors' : 'sockets moved'})` : '';
    log.info(`Using hand-off: ${handoff}${mechanism}, concurrency: ${options.use ?? 'coroutine'}`);

    const pool = new ActorPool({
      ...generation,
      size: workers,
      log,
      onAccessLine: accessLog?.write,
      timeout: wholeNumberAtLeast('timeout', options.timeout ?? DEFAULTS.timeout, 0),
      gracefulTimeout: wholeNumberAtLeast('graceful timeout', options.gracefulTimeout ?? DEFAULTS.gracefulTimeout, 0),
    });
    const dispatcher = new Dispatcher(
      pool,
      handoff,
      generation.settings.requestsPerActor,
      {
        headerTimeoutMs: generation.settings.headerTimeout * 1000,
        proxyFrom: options.proxyProtocol ? createAddressMatcher(checkedAllowIps(options.proxyAllowFrom ?? DEFAULTS.proxyAllowFrom, 'proxy allow from')) : null,
      },
      options.stickySessions ?? DEFAULTS.stickySessions,
    );
    const listen = async () =>
      openListeners(
        options.inheritListeners ? await options.inheritListeners() : binds,
        options.backlog ?? DEFAULTS.backlog,
        dispatcher.accept,
        secure,
        options.umask ?? 0,
      );
    let listeners: Listener[] = [];
    try {
      // Boot first, so a broken app fails before anything listens; unless privileges drop after binding.
      if (options.afterBind) {
        listeners = await listen();
        await options.afterBind();
        await pool.start();
      } else {
        await pool.start();
        listeners = await listen();
      }
    } catch (error) {
      dispatcher.dropWaiting();
      await Promise.all([pool.close(), closeListeners(listeners)]);
      throw error;
    }
    for (const listener of listeners) log.info(`Listening at: ${listener.url} (${process.pid})`);
    pool.announceListening(listeners.flatMap((listener) => listener.server.address() ?? []));
    const server = new GrainbowsServer(handoff, pool, dispatcher, listeners, log, accessLog, options);
    if (statsd) server.reportToStatsd(statsd);
    if (options.metricsBind) {
      try {
        server.metrics = await MetricsEndpoint.open(options.metricsBind, server, log);
      } catch (error) {
        await server.close({ graceful: false });
        throw error;
      }
    }
    return server;
  }

  /** gunicorn.workers every second, as gunicorn's arbiter sends it. */
  private reportToStatsd(client: StatsD): void {
    const timer = setInterval(() => client.gauge('gunicorn.workers', this.pool.readyCount), STATSD_WORKERS_EVERY_MS).unref();
    client.gauge('gunicorn.workers', this.pool.readyCount);
    this.statsd = { client, timer };
  }

  /** Where the Prometheus endpoint listens (`--metrics-bind`), e.g. `http://127.0.0.1:9100`; undefined when off. */
  get metricsUrl(): string | undefined {
    return this.metrics?.url;
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
    };
  }

  /**
   * A new generation of actors with the app imported afresh and the given options merged over the current
   * ones; the old generation finishes its requests and retires. Listening addresses and the hand-off do not
   * change. If the new generation cannot start, the old one keeps serving and this rejects with why.
   */
  async reload(changes: Partial<ServeOptions> = {}): Promise<void> {
    const next = { ...this.options, ...changes };
    const generation = generationFrom(next, Boolean(this.accessLog));
    const workers = wholeNumberAtLeast('workers', next.workers ?? DEFAULTS.workers, 1);
    const secure = loadTlsMaterial(next, next.cwd);
    if (Boolean(next.certfile) !== Boolean(this.options.certfile)) {
      this.log.warning('reload: listeners do not switch between HTTP and HTTPS on reload (restart, or upgrade with USR2)');
    }
    this.log.info(`Reloading: generation ${this.pool.currentGeneration + 1} with ${workers} actors`);
    await this.pool.reload({ ...generation, size: workers });
    if (secure) renewCertificates(this.listening, secure);
    this.options = next;
    this.log.info(`Reloaded: generation ${this.pool.currentGeneration} serving`);
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

  /** Reopens the access log file (log rotation: the old file was moved away). */
  reopenLogs(): void {
    this.accessLog?.reopen();
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
    const listening = closeListeners(this.listening, { handingOver });
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
    this.dispatcher.close();
    await this.pool.close();
    await listening;
    await this.metrics?.close(); // last: the readiness probe says 503 until the very end
    if (this.statsd) {
      clearInterval(this.statsd.timer);
      await closeStatsd(this.statsd.client);
    }
    this.accessLog?.close();
    this.log.debug('server closed');
  }
}
