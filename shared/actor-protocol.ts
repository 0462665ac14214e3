/**
 * The contract between the main thread and an actor, in one place (as piscina's src/common.ts is for its
 * pool): what main gives an actor to start it (ActorTask, ActorSettings), what it may call on it over
 * comlink (ActorControl), and what the actor answers (BootResult, ActorStats, ActorExit). The messages on
 * the data port (connections, relay frames, notices, log lines) are in shared/wire.ts; the task pool's are
 * in shared/task-protocol.ts.
 *
 * Main (source/) imports these types from here and never from actors/: the only thing of actors/ that main
 * knows is the URL of the actor's entry module (source/lifecycle/actor-pool.ts).
 */
import type { AddressInfo } from 'node:net';
import type { Server } from 'node:http';
import type { MessagePort } from 'node:worker_threads';
import type { AppSpec } from './app-spec.js';
import type { CleartextHttp2, Http2Limits, SettingsValues } from './settings-values.js';
import type { StatsdTarget } from './statsd.js';
import type { ActorTls } from './tls-options.js';
import type { TaskCatalog } from './task-protocol.js';

/** What the app module turned out to be (actors/app-loader.ts detects it, in this order of checks). */
export type AppKind = 'fetch' | 'koa' | 'fastify' | 'http-server' | 'listener';

/** A module may export `onServer`: it receives each actor's `http.Server`, for `ws`, socket.io and friends. */
export type ServerHook = (server: Server, context: { actorId: number }) => void | Promise<void>;

/** A listening address as main's `net.Server.address()` gives it. */
export type ListeningAddress = AddressInfo | string;

/** The request-head limits (`--limit-request-line`, `--limit-request-fields`, `--limit-request-field-size`). */
export interface HeadLimits {
  /** Longest request line, in bytes. 0 means no limit. */
  requestLine: number;
  /** Most header fields. 0 means no limit. */
  fields: number;
  /** Longest `name: value` field with its CRLF, in bytes (gunicorn counts it so). Main never sends 0 (gunicorn's "the default"): it sends the default itself. */
  fieldSize: number;
}

/**
 * The leniencies of actors/request-normalizer.ts in front of Node's parser (`--http-compat gunicorn` and
 * gunicorn's `--permit-*` settings).
 */
export interface ParserCompat {
  /** gunicorn's default leniencies: token methods, raw non-ASCII targets, TE identity, BWS in chunk extensions. */
  gunicorn: boolean;
  permitObsoleteFolding: boolean;
  stripHeaderSpaces: boolean;
  permitUnconventionalHttpMethod: boolean;
  casefoldHttpMethod: boolean;
  /** --limit-request-field-size, for folded fields. */
  fieldSize: number;
}

/** Whether any setting needs the framer in front of Node's parser (none: Node's parser alone). */
export function compatWanted(compat: ParserCompat): boolean {
  return compat.gunicorn || compat.permitObsoleteFolding || compat.stripHeaderSpaces || compat.permitUnconventionalHttpMethod || compat.casefoldHttpMethod;
}

/** What actors/request-pipeline.ts is told of the settings. */
export interface HttpSettings extends Pick<
  SettingsValues,
  | 'headerMap'
  | 'stickySessions'
  | 'forwardedAllowIps'
  | 'requestTimeout'
  | 'headerTimeout'
  | 'bodyTimeout'
  | 'limitRequestBody'
  | 'bufferChunkedBody'
  | 'bodyMinRate'
> {
  keepAliveTimeoutMs: number;
  headLimits: HeadLimits;
  /** `--use sync`: no keep-alive, so the actor's one slot frees as soon as the response is sent. */
  closeAfterResponse: boolean;
  /** The access log format, or null when no access log is kept. */
  accessLogFormat: string | null;
  /** The leniencies of request-normalizer.ts in front of Node's parser; null: Node's parser alone. */
  compat: ParserCompat | null;
}

/** What an actor is told of the settings (from the settings table, source/config/settings.ts). */
export interface ActorSettings extends HttpSettings, Pick<SettingsValues, 'logLevel'> {
  /** `--max-requests` with this actor's jitter added by main; 0 = never. */
  maxRequests: number;
  /** The config file whose actor hooks (actorInit, preRequest, ...) this actor runs, if it has any. */
  hooksFile: string | null;
  /** Where this actor sends gunicorn's per-request StatsD metrics; null when off. */
  statsd: StatsdTarget | null;
  /** `--worker-connections`: the most requests in flight main gives this actor (1 with `--use sync`). */
  requestsPerActor: number;
  /** HTTPS ended in this actor, on the sockets main moves here unread; null: plain HTTP, or TLS ended in main. */
  tls: ActorTls | null;
  /** `--http-protocols` offers h2 or `--http2-cleartext` is on: the SETTINGS its connections get; null: HTTP/1.1 only. */
  http2: Http2Limits | null;
  /** `--http2-cleartext`: which peers may speak cleartext HTTP/2, by prior knowledge or `Upgrade: h2c`; null when off. */
  h2c: CleartextHttp2 | null;
  /** `-w`: how many actors serve the app, this one included. */
  actors: number;
  /** `--tasks`: the task modules the app may call (through `taskPort`), and the timeout; null without a task pool. */
  tasks: TaskCatalog | null;
  /** `--heap-trim-after` in milliseconds: a quiet actor gives its young generation back (shared/idle-heap-trim.ts); 0 = never. */
  heapTrimAfterMs: number;
}

/** The piscina task that is one actor's whole life (actors/actor.ts runs it). */
export interface ActorTask {
  actorId: number;
  app: AppSpec;
  dataPort: MessagePort;
  controlPort: MessagePort;
  settings: ActorSettings;
  /**
   * One BigInt64 the actor sets to `Date.now()` every HEARTBEAT_MS from its event loop: main reads it to
   * tell a hung actor (`--timeout`) from a busy one without a round trip.
   */
  heartbeat: SharedArrayBuffer;
  /** Where the app's runTask and streamTask calls go (source/tasks/task-link.ts); absent without a task pool. */
  taskPort?: MessagePort;
  /** One Int32: requests in flight, counted by main and actor together (actors/request-slots.ts). */
  requestSlots: SharedArrayBuffer;
  /** Responses by status class and duration, written here and read by main (shared/request-metrics.ts). */
  requestMetrics: SharedArrayBuffer;
}

/** How often an actor stamps its heartbeat. */
export const HEARTBEAT_MS = 250;

/** `http2`: the actor serves HTTP/2 (asked for, and the app can speak it). */
export type BootResult = { ok: true; kind: AppKind; http2: boolean } | { ok: false; code: 'E_APP_LOAD' | 'E_NOT_AN_APP'; message: string; detail: string };

export interface ActorStats {
  actorId: number;
  connections: number;
  /** Transferred connections still sending their first request head (the actor's head gate). */
  awaitingHead: number;
  requestsServed: number;
  requestsInFlight: number;
  /** Event-loop utilisation since the previous stats() call, 0..1. */
  eventLoopUtilization: number;
  /** Milliseconds the event loop has been busy and idle since the actor started (a reader computes its own utilisation from two readings). */
  eventLoopActiveMs: number;
  eventLoopIdleMs: number;
  /** This actor's V8 heap, in bytes. */
  heapUsed: number;
  heapTotal: number;
  startedAt: number;
}

/** What the main thread may call on an actor (over comlink: control only, never per request). */
export interface ActorControl {
  ready(): Promise<BootResult>;
  stats(): ActorStats;
  /**
   * Finish what is in flight, take no more keep-alive requests: each response from now on carries
   * `Connection: close` and idle connections are closed. Connections handed over later are still served.
   */
  drain(): void;
  /** Main's listeners are open at these addresses (and were before this actor started, for later actors). */
  listening(addresses: ListeningAddress[]): Promise<void>;
  /** Close every connection now and end the task. */
  stop(): void;
}

/** What an actor's task resolves with when it ends. */
export interface ActorExit {
  actorId: number;
  requestsServed: number;
}
