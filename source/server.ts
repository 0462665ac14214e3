/**
 * A running grainbows server: listeners on the main thread, a pool of actors, and the dispatcher between.
 * Start-up reads top to bottom: resolve the app, choose the hand-off, boot the actors (so a broken app
 * fails before we listen), open the listeners, accept.
 */
import { EventEmitter } from 'node:events';
import v8 from 'node:v8';
import { parseAppSpec, type AppSpec } from './app-spec.js';
import { ActorPool, type Actor } from './actor-pool.js';
import type { HandoffStrategy } from './actor-link.js';
import { parseBind, type BindAddress } from './bind.js';
import { Dispatcher } from './dispatcher.js';
import { GrainbowsError } from './errors.js';
import { chooseHandoff } from './handoff.js';
import { closeListeners, openListeners, type Listener } from './listeners.js';
import { createLogger, type Logger, type LogLevel } from './log.js';
import type { ActorStats } from '../actors/actor.js';
import type { ResourceLimits } from 'node:worker_threads';
import { DEFAULT_HEAD_LIMITS, type HeaderMap } from '../actors/request-rules.js';
import { DEFAULT_ACCESS_LOG_FORMAT } from '../actors/access-log.js';
import { openAccessLog, type AccessLog } from './access-log.js';

export interface ServeOptions {
  /** `MODULE[:EXPORT]`, relative to `cwd`, or an already resolved spec. */
  app: string | AppSpec;
  /** Addresses to listen on (default `127.0.0.1:8000`). */
  bind?: Array<string | BindAddress>;
  /** Number of actors (threads). Default 1. */
  workers?: number;
  /** Most connections one actor serves at once. Default 1000. */
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
   * Sets V8's `--heap-growing-percent` for the whole process (main and actors) before the actors start.
   * Not set by default for library users, since it is process-wide; the CLI sets 20 (docs/settings.md).
   */
  heapGrowingPercent?: number;
  /** Access log: a file to append to, or `-` for stdout. Off when not given. */
  accessLogfile?: string;
  /** gunicorn's access log format (atoms like `%(h)s`), or `json` for one JSON object per line. */
  accessLogformat?: string;
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
  cwd?: string;
}

export interface ServerEvents {
  'actor-exit': [actor: { id: number }, error: Error | null];
  fatal: [error: GrainbowsError];
}

export interface ServerStats {
  handoff: HandoffStrategy;
  queued: number;
  actors: Array<ActorStats & { generation: number; state: string }>;
}

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
  accessLogformat: DEFAULT_ACCESS_LOG_FORMAT,
} as const;

export class GrainbowsServer extends EventEmitter<ServerEvents> {
  private constructor(
    readonly handoff: HandoffStrategy,
    private readonly pool: ActorPool,
    private readonly dispatcher: Dispatcher,
    private readonly listening: Listener[],
    private readonly log: Logger,
    private readonly accessLog: AccessLog | undefined,
  ) {
    super();
    pool.on('actor-exit', (actor: Actor, error) => this.emit('actor-exit', { id: actor.id }, error));
    pool.on('fatal', (error) => this.emit('fatal', error));
  }

  static async start(options: ServeOptions): Promise<GrainbowsServer> {
    const log = options.logger ?? createLogger(options.logLevel ?? 'info');
    const app = typeof options.app === 'string' ? parseAppSpec(options.app, options.cwd) : options.app;
    const binds = (options.bind ?? [DEFAULTS.bind]).map((bind) => (typeof bind === 'string' ? parseBind(bind) : bind));
    const workers = options.workers ?? DEFAULTS.workers;
    const workerConnections = options.workerConnections ?? DEFAULTS.workerConnections;
    if (!Number.isInteger(workers) || workers < 1) throw new GrainbowsError('E_USAGE', `workers must be a whole number ≥ 1, not ${workers}`);
    if (!Number.isInteger(workerConnections) || workerConnections < 1) {
      throw new GrainbowsError('E_USAGE', `worker connections must be a whole number ≥ 1, not ${workerConnections}`);
    }
    if (options.heapGrowingPercent) {
      // Read by V8 at every major GC, so setting it at start-up, before any actor exists, takes effect everywhere.
      v8.setFlagsFromString(`--heap-growing-percent=${options.heapGrowingPercent}`);
    }
    const handoff = await chooseHandoff(options.handoff ?? 'auto');
    const accessLog = options.accessLogfile ? openAccessLog(options.accessLogfile) : undefined;
    log.info(`Using hand-off: ${handoff}, concurrency: ${options.use ?? 'coroutine'}`);

    const pool = new ActorPool({
      size: workers,
      app,
      log,
      resourceLimits: options.resourceLimits ?? DEFAULTS.actorResourceLimits,
      onAccessLine: accessLog?.write,
      settings: {
        keepAliveTimeoutMs: (options.keepAlive ?? DEFAULTS.keepAlive) * 1000,
        headLimits: {
          requestLine: options.limitRequestLine ?? DEFAULTS.limitRequestLine,
          fields: options.limitRequestFields ?? DEFAULTS.limitRequestFields,
          fieldSize: options.limitRequestFieldSize ?? DEFAULTS.limitRequestFieldSize,
        },
        headerMap: options.headerMap ?? DEFAULTS.headerMap,
        closeAfterResponse: options.use === 'sync',
        accessLogFormat: accessLog ? (options.accessLogformat ?? DEFAULTS.accessLogformat) : null,
        logLevel: options.logLevel ?? 'info',
      },
    });
    try {
      await pool.start();
    } catch (error) {
      await pool.close();
      throw error;
    }
    const sync = options.use === 'sync';
    const dispatcher = new Dispatcher(pool, handoff, sync ? 1 : workerConnections);
    let listeners: Listener[];
    try {
      listeners = await openListeners(binds, options.backlog ?? DEFAULTS.backlog, dispatcher.accept);
    } catch (error) {
      await pool.close();
      throw error;
    }
    for (const listener of listeners) log.info(`Listening at: ${listener.url} (${process.pid})`);
    return new GrainbowsServer(handoff, pool, dispatcher, listeners, log, accessLog);
  }

  /** Where the server listens, e.g. `http://127.0.0.1:41234` (the real port when 0 was asked for). */
  get urls(): string[] {
    return this.listening.map((listener) => listener.url);
  }

  async stats(): Promise<ServerStats> {
    return { handoff: this.handoff, queued: this.dispatcher.queued, actors: await this.pool.stats() };
  }

  /** Stops listening, then stops the actors (their connections close with them). */
  async close(): Promise<void> {
    const listening = closeListeners(this.listening);
    this.dispatcher.dropWaiting();
    await this.pool.close();
    await listening;
    this.log.debug('server closed');
  }
}
