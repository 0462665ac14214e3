/**
 * One actor: a piscina task that lives as long as the actor does.
 *
 * It imports the app, builds an `http.Server` that never listens (connections arrive from the main thread
 * through the data port), answers control calls over comlink on the control port, and resolves when told
 * to stop. Every connection is a coroutine (see connection-host.ts); the HTTP work is Node's own parser.
 */
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import type { MessagePort } from 'node:worker_threads';
import * as Comlink from 'comlink';
import type { AppSpec } from '../shared/app-spec.js';
import { createForwardingLogger, describeError } from '../shared/log.js';
import type { CleartextHttp2, Http2Limits, SettingsValues } from '../shared/settings-values.js';
import type { ActorNotice, LogMessage } from '../shared/wire.js';
import { AppLoadFailure, loadApp, type AppKind, type LoadedApp } from './app-loader.js';
import { ConnectionHost } from './connection-host.js';
import type { ActorTls } from '../shared/tls-options.js';
import { createActorServer, requestHandlerOf, routeConnectToApp, type HttpSettings, type RequestCounters } from './http-server.js';
import { Http2Sessions, http2Refusal } from './http2-sessions.js';
import { H2C_SERVER_OPTIONS, takeH2cUpgrades } from './h2c-upgrade.js';
import { DrainMode } from './drain.js';
import { RequestSlots } from './request-slots.js';
import { RequestMetrics } from '../shared/request-metrics.js';
import { closeStatsd, openStatsd, sendResponse, type StatsdTarget } from '../shared/statsd.js';
import { forwardServerEvents } from './app-server.js';
import { ACTOR_ID_KEY, sharedAdapterBuilt } from '../shared/affinity.js';
import { createRequire } from 'node:module';
import { createAddressMatcher } from '../shared/forwarded.js';
import type { ListeningAddress } from './fastify-lifecycle.js';
import { callHook, loadActorHooks, type ActorHooks, type HookActor } from '../shared/hooks.js';

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
}

/**
 * Has the app loaded socket.io? Its package is CommonJS, so importing it from ESM still puts it in
 * require's cache; grainbows/socket.io does not load it.
 */
function socketIoLoaded(): boolean {
  return Object.keys(createRequire(import.meta.url).cache).some((file) => /[\\/]node_modules[\\/]socket\.io[\\/]/.test(file));
}

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
  /** One Int32: requests in flight, counted by main and actor together (request-slots.ts). */
  requestSlots: SharedArrayBuffer;
  /** Responses by status class and duration, written here and read by main (request-metrics.ts). */
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

export interface ActorExit {
  actorId: number;
  requestsServed: number;
}

export default async function runActor(task: ActorTask): Promise<ActorExit> {
  (globalThis as Record<symbol, unknown>)[ACTOR_ID_KEY] = task.actorId;
  const log = createForwardingLogger(task.settings.logLevel, (level, message) => {
    const line: LogMessage = { kind: 'log', level, message };
    task.dataPort.postMessage(line);
  });
  const startedAt = Date.now();
  const beat = new BigInt64Array(task.heartbeat);
  const heartbeat = setInterval(() => Atomics.store(beat, 0, BigInt(Date.now())), HEARTBEAT_MS);
  Atomics.store(beat, 0, BigInt(startedAt));
  let retireRequested = false;
  const requests: RequestCounters = {
    inFlight: 0,
    served: 0,
    afterResponse: () => {
      if (task.settings.maxRequests === 0 || retireRequested || requests.served < task.settings.maxRequests) return;
      retireRequested = true;
      const notice: ActorNotice = { kind: 'retire' };
      task.dataPort.postMessage(notice);
    },
  };
  const drain = new DrainMode();
  const slots = new RequestSlots(task.requestSlots, task.settings.requestsPerActor, () => {
    const notice: ActorNotice = { kind: 'slot-freed' };
    task.dataPort.postMessage(notice);
  });
  let lastUtilization = performance.eventLoopUtilization();
  let host: ConnectionHost | undefined;
  let app: LoadedApp | undefined;
  let hooks: ActorHooks = {};
  let hookActor: HookActor | undefined;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });

  const statsd = task.settings.statsd && openStatsd(task.settings.statsd, (error) => log.debug(`statsd: ${error.message}`));
  const booting = boot();
  const control: ActorControl = {
    ready: () => booting,
    stats: () => {
      const now = performance.eventLoopUtilization();
      const delta = performance.eventLoopUtilization(now, lastUtilization);
      lastUtilization = now;
      const heap = getHeapStatistics();
      return {
        actorId: task.actorId,
        heapUsed: heap.used_heap_size,
        heapTotal: heap.total_heap_size,
        connections: host?.connectionCount ?? 0,
        awaitingHead: host?.awaitingHead ?? 0,
        requestsServed: requests.served,
        requestsInFlight: requests.inFlight,
        eventLoopUtilization: delta.utilization,
        eventLoopActiveMs: now.active,
        eventLoopIdleMs: now.idle,
        startedAt,
      };
    },
    drain: () => {
      if (host) drain.start(host);
    },
    listening: async (addresses) => {
      try {
        await app?.onListening?.(addresses);
      } catch (error) {
        log.error(`app: start-up hooks failed: ${describeError(error, true)}`);
      }
    },
    stop: () => stop(),
  };
  Comlink.expose(control, task.controlPort as unknown as Comlink.Endpoint);

  async function boot(): Promise<BootResult> {
    try {
      const loaded = await loadApp(task.app);
      app = loaded;
      if (task.actorId === 1 && task.settings.actors > 1 && socketIoLoaded() && !sharedAdapterBuilt())
        log.warning(
          `app: socket.io keeps its clients and rooms in each of the ${task.settings.actors} actors: a broadcast reaches only the clients of the actor that sends it. Give it grainbows/socket.io's createAdapter() and run with --sticky-sessions (docs/frameworks.md)`,
        );
      hooks = await loadActorHooks(task.settings.hooksFile);
      // The host needs the server and the server's access log needs the host: bind the line sender late.
      let sendAccessLine = (_line: string): void => {};
      const server = createActorServer(loaded, task.settings, {
        log,
        counters: requests,
        slots,
        metrics: new RequestMetrics(task.requestMetrics, statsd ? (status, seconds) => sendResponse(statsd, status, seconds) : undefined),
        drain,
        hooks,
        actorId: task.actorId,
        emitAccessLine: (line) => sendAccessLine(line),
        serverOptions: task.settings.http2 && task.settings.h2c?.upgrade ? H2C_SERVER_OPTIONS : undefined,
      });
      if (loaded.ownServer) forwardServerEvents(loaded.ownServer, server);
      await loaded.onServer?.(server, { actorId: task.actorId });
      hookActor = { actorId: task.actorId, server };
      await callHook('actorInit', hooks.actorInit, [hookActor], log);
      routeConnectToApp(server);
      // An app that cannot speak HTTP/2 is offered HTTP/1.1 only, whatever --http-protocols asks.
      const refusal = task.settings.http2 ? http2Refusal(loaded) : undefined;
      if (refusal && task.actorId === 1) log.warning(`app: HTTP/2 is not offered: ${refusal}; it is served HTTP/1.1 only (--http-protocols h1 says so)`);
      const http2 = refusal ? null : task.settings.http2;
      const actorTls = task.settings.tls && refusal ? { ...task.settings.tls, alpn: ['http/1.1'] } : task.settings.tls;
      const h2c = http2 ? task.settings.h2c : null;
      const h2cTrusted = h2c ? createAddressMatcher(h2c.from) : undefined;
      const sessions = http2 ? new Http2Sessions(requestHandlerOf(server), http2, task.settings.keepAliveTimeoutMs, log) : undefined;
      const connections = new ConnectionHost(
        task.dataPort,
        server,
        slots,
        { headerTimeoutMs: task.settings.headerTimeout * 1000, bodyTimeoutMs: task.settings.bodyTimeout * 1000 },
        task.settings.compat,
        actorTls ? { settings: actorTls, log } : undefined,
        sessions,
        h2c?.priorKnowledge ? h2cTrusted : undefined,
      );
      if (h2c?.upgrade && h2cTrusted)
        takeH2cUpgrades(server, {
          trusted: h2cTrusted,
          draining: () => drain.active,
          serve: (socket) => connections.serveUpgraded(socket),
          recount: (socket) => slots.recount(socket),
          prefaceTimeoutMs: task.settings.headerTimeout * 1000,
        });
      sendAccessLine = (line) => connections.sendAccessLine(line);
      host = connections;
      log.debug(`actor ${task.actorId} serving ${task.app.display} as a ${loaded.kind} app`);
      return { ok: true, kind: loaded.kind, http2: http2 !== null };
    } catch (error) {
      const failure = error instanceof AppLoadFailure ? error : new AppLoadFailure('E_APP_LOAD', `failed to start ${task.app.display}`, { cause: error });
      const cause = failure.cause === undefined ? '' : `: ${describeError(failure.cause)}`;
      const detail = failure.cause instanceof Error ? (failure.cause.stack ?? '') : (failure.stack ?? '');
      // The task ends when main calls stop() after reading this: ending it now would race the reply.
      return { ok: false, code: failure.code, message: `${failure.message}${cause}`, detail };
    }
  }

  await stopped;
  try {
    await app?.close?.();
  } catch (error) {
    log.error(`app: close hooks failed: ${describeError(error, true)}`);
  }
  if (hookActor) await callHook('actorExit', hooks.actorExit, [hookActor], log);
  clearInterval(heartbeat);
  drain.stop();
  host?.destroyAll();
  task.dataPort.close();
  if (statsd) await closeStatsd(statsd);
  // Give comlink's last reply (to stop()) a turn to leave before the port closes.
  await new Promise((resolve) => setImmediate(resolve));
  task.controlPort.close();
  return { actorId: task.actorId, requestsServed: requests.served };
}
