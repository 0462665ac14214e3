/**
 * One actor: a piscina task that lives as long as the actor does.
 *
 * It imports the app, builds an `http.Server` that never listens (connections arrive from the main thread
 * through the data port), answers control calls over comlink on the control port, and resolves when told
 * to stop. Every connection is a coroutine (see connection-host.ts); the HTTP work is Node's own parser.
 */
import { performance } from 'node:perf_hooks';
import { getHeapStatistics } from 'node:v8';
import * as Comlink from 'comlink';
import { HEARTBEAT_MS, type ActorControl, type ActorExit, type ActorTask, type BootResult } from '../shared/actor-protocol.js';
import { createForwardingLogger, describeError } from '../shared/log.js';
import { isPeerPortRequest, type ActorNotice, type LogMessage } from '../shared/wire.js';
import { AppLoadFailure, loadApp, type LoadedApp } from './app-loader.js';
import { ConnectionHost } from './connection-host.js';
import { createActorServer, requestHandlerOf, routeConnectToApp, type RequestCounters } from './request-pipeline.js';
import { DrainMode } from './drain.js';
import { RequestSlots } from './request-slots.js';
import { RequestMetrics } from '../shared/request-metrics.js';
import { closeStatsd, openStatsd, sendResponse } from '../shared/statsd.js';
import { trimHeapWhenQuiet } from '../shared/idle-heap-trim.js';
import { forwardServerEvents } from './app-own-server.js';
import { ACTOR_ID_KEY, sharedAdapterBuilt } from '../shared/affinity.js';
import { createRequire } from 'node:module';
import { createAddressMatcher } from '../shared/forwarded.js';
import { callHook, loadActorHooks, type ActorHooks, type HookActor } from '../shared/hooks.js';
import type { TaskLink } from './tasks.js';
import type { SessionForwarder } from './session-forwarding.js';

/**
 * Has the app loaded socket.io with its default, in-memory adapter? socket.io is CommonJS, so importing it
 * from ESM still puts it in require's cache; grainbows/socket.io does not load it. An adapter package
 * (`@socket.io/redis-adapter`, `@socket.io/redis-streams-adapter`, `socket.io-redis`, ...) in the cache means
 * the app shares its clients some other way.
 */
function socketIoAloneInActor(): boolean {
  const files = Object.keys(createRequire(import.meta.url).cache);
  const socketIo = files.some((file) => /[\\/]node_modules[\\/]socket\.io[\\/]/.test(file));
  const adapter = files.some((file) => /[\\/]node_modules[\\/](@socket\.io[\\/][^\\/]*adapter|socket\.io-redis)[\\/]/.test(file));
  return socketIo && !adapter && !sharedAdapterBuilt();
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
  let forwarder: SessionForwarder | undefined;
  /** The ends of channels other actors forward requests through. */
  const peers: ConnectionHost[] = [];
  let app: LoadedApp | undefined;
  let hooks: ActorHooks = {};
  let hookActor: HookActor | undefined;
  let stop!: () => void;
  const stopped = new Promise<void>((resolve) => {
    stop = resolve;
  });

  // Before the app loads: its top level may already call a task (a warm-up). The modules of the task link,
  // of session forwarding and of engine.io's session names load only with their setting (docs/performance.md, Memory).
  const taskLink: TaskLink | undefined =
    task.taskPort && task.settings.tasks ? (await import('./tasks.js')).installTaskLink(task.taskPort, task.settings.tasks) : undefined;
  const sticky = task.settings.stickySessions ? { ...(await import('./session-forwarding.js')), ...(await import('./engine-io-sessions.js')) } : undefined;
  const statsd = task.settings.statsd ? await openStatsd(task.settings.statsd, (error) => log.debug(`statsd: ${error.message}`)) : null;
  const booting = boot();
  const stopTrimming =
    task.settings.heapTrimAfterMs > 0
      ? trimHeapWhenQuiet({ served: () => requests.served, inFlight: () => requests.inFlight }, task.settings.heapTrimAfterMs, log)
      : () => {};
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
        // An app may load socket.io only once it listens.
        sticky?.nameEngineIoSessions(task.actorId);
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
      if (task.actorId === 1 && task.settings.actors > 1 && socketIoAloneInActor())
        log.warning(
          `app: socket.io keeps its clients and rooms in each of the ${task.settings.actors} actors: a broadcast reaches only the clients of the actor that sends it. Give it grainbows/socket.io's createAdapter() and run with --sticky-sessions (docs/frameworks.md)`,
        );
      hooks = await loadActorHooks(task.settings.hooksFile);
      // HTTP/2's modules (and node:http2) load only in an actor that may serve it (docs/performance.md, Memory).
      const h2 = task.settings.http2 ? await import('./http2-sessions.js') : undefined;
      const h2cUpgrade = task.settings.http2 && task.settings.h2c?.upgrade ? await import('./h2c-upgrade.js') : undefined;
      // The host needs the server and the server's access log needs the host: bind the line sender late.
      let sendAccessLine = (_line: string): void => {};
      forwarder = sticky ? new sticky.SessionForwarder(task.dataPort, log) : undefined;
      const server = createActorServer(loaded, task.settings, {
        log,
        counters: requests,
        slots,
        metrics: new RequestMetrics(task.requestMetrics, statsd ? (status, seconds) => sendResponse(statsd, status, seconds) : undefined),
        drain,
        hooks,
        actorId: task.actorId,
        emitAccessLine: (line) => sendAccessLine(line),
        serverOptions: h2cUpgrade?.H2C_SERVER_OPTIONS,
        forwardSession: forwarder && {
          request: (owner, req, res) => forwarder?.forward(owner, req, res),
          upgrade: (owner, req, socket, head) => forwarder?.forwardUpgrade(owner, req, socket, head),
        },
      });
      if (loaded.ownServer) forwardServerEvents(loaded.ownServer, server);
      await loaded.onServer?.(server, { actorId: task.actorId });
      sticky?.nameEngineIoSessions(task.actorId);
      hookActor = { actorId: task.actorId, server };
      await callHook('actorInit', hooks.actorInit, [hookActor], log);
      routeConnectToApp(server);
      // An app that cannot speak HTTP/2 is offered HTTP/1.1 only, whatever --http-protocols asks.
      const refusal = h2 ? h2.http2Refusal(loaded) : undefined;
      if (refusal && task.actorId === 1) log.warning(`app: HTTP/2 is not offered: ${refusal}; it is served HTTP/1.1 only (--http-protocols h1 says so)`);
      const http2 = refusal ? null : task.settings.http2;
      const actorTls = task.settings.tls && refusal ? { ...task.settings.tls, alpn: ['http/1.1'] } : task.settings.tls;
      const h2c = http2 ? task.settings.h2c : null;
      const h2cTrusted = h2c ? createAddressMatcher(h2c.from) : undefined;
      const sessions = http2 && h2 ? new h2.Http2Sessions(requestHandlerOf(server), http2, task.settings.keepAliveTimeoutMs, log) : undefined;
      const connections = new ConnectionHost(
        task.dataPort,
        server,
        slots,
        { headerTimeoutMs: task.settings.headerTimeout * 1000, bodyTimeoutMs: task.settings.bodyTimeout * 1000 },
        task.settings.compat,
        actorTls ? { settings: actorTls, log, TlsFront: (await import('./tls-front.js')).TlsFront } : undefined,
        sessions,
        h2c?.priorKnowledge ? h2cTrusted : undefined,
      );
      if (h2c?.upgrade && h2cTrusted && h2cUpgrade)
        h2cUpgrade.takeH2cUpgrades(server, {
          trusted: h2cTrusted,
          draining: () => drain.active,
          serve: (socket) => connections.serveUpgraded(socket),
          recount: (socket) => slots.recount(socket),
          prefaceTimeoutMs: task.settings.headerTimeout * 1000,
        });
      sendAccessLine = (line) => connections.sendAccessLine(line);
      host = connections;
      // Requests other actors forward here, each channel read as relayed connections are (session-forwarding.ts).
      task.dataPort.on('message', (message: unknown) => {
        if (!isPeerPortRequest(message)) return;
        const peer = new ConnectionHost(message.port, server, slots, {
          headerTimeoutMs: task.settings.headerTimeout * 1000,
          bodyTimeoutMs: task.settings.bodyTimeout * 1000,
        });
        peer.firstRequestCountedByMain = false;
        peers.push(peer);
      });
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
  stopTrimming();
  drain.stop();
  host?.destroyAll();
  forwarder?.close();
  for (const peer of peers) peer.destroyAll();
  task.dataPort.close();
  taskLink?.close();
  if (statsd) await closeStatsd(statsd);
  // Give comlink's last reply (to stop()) a turn to leave before the port closes.
  await new Promise((resolve) => setImmediate(resolve));
  task.controlPort.close();
  return { actorId: task.actorId, requestsServed: requests.served };
}
