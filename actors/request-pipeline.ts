/**
 * The actor's `http.Server`: Node's own HTTP/1.1 implementation (keep-alive, pipelining, 100-continue,
 * chunked bodies, trailers, upgrades), fed connections by the main thread instead of a listening socket.
 * What we add: the head rules of request-rules.ts, gunicorn-style answers to malformed requests,
 * half-close, and CONNECT handed to the app like any other method.
 */
import http from 'node:http';
import type { Duplex } from 'node:stream';
import type { Logger } from '../shared/log.js';
import type { LoadedApp } from './app-loader.js';
import { guardListener } from './guard.js';
import { FORWARDING, TRANSFER_ENCODING, checkRequestHead, isHttp2Request, type HeadFacts, type Rejection } from './request-rules.js';
import { formatAccessLine } from '../shared/access-log.js';
import { REQUESTS_SEEN, type DrainMode } from './drain.js';
import { callRequestHook, type ActorHooks } from '../shared/hooks.js';
import { createForwardingPolicy } from '../shared/forwarded.js';
import { armRequestDeadline } from './request-deadline.js';
import { answerTooLarge, countBody, declaredTooLarge } from './body-limit.js';
import type { RequestSlots, SlotTicket } from './request-slots.js';
import { capUnreadBody } from './unread-body.js';
import { bufferChunkedBody, isChunked } from './body-buffer.js';
import { UploadRateGuard } from './upload-rate.js';
import { refuseForbiddenTrailers } from './trailer-rules.js';
import { answerAndClose } from './answer.js';
import { restoreRequest } from './request-normalizer.js';
import type { HttpSettings } from '../shared/actor-protocol.js';
import { RelaySocket } from './relay-socket.js';
import type { RequestMetrics } from '../shared/request-metrics.js';
import { sessionOwner } from '../shared/affinity.js';
import { routeAsAppEvent, type AppRequestEvent } from './app-own-server.js';

/**
 * The settings an actor's HTTP server reads: those taken as they are (named and described in the settings
 * table, source/config/settings.ts) and a few derived from the table's values by main (generationFrom in
 * source/server.ts).
 */
const STATUS_TEXT: Record<number, string> = {
  400: 'Bad Request',
  408: 'Request Timeout',
  413: 'Content Too Large',
  414: 'URI Too Long',
  431: 'Request Header Fields Too Large',
  501: 'Not Implemented',
  505: 'HTTP Version Not Supported',
};

function refuse(res: http.ServerResponse, { status, reason }: Rejection): void {
  answerAndClose(res, status, `${STATUS_TEXT[status]}: ${reason}\n`);
}

/** Status for a parse error from Node's parser (llhttp codes), as gunicorn would answer it. */
function statusForParseError(code: string | undefined): number {
  switch (code) {
    case 'HPE_HEADER_OVERFLOW':
      return 431;
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return 408;
    default:
      return 400;
  }
}

interface SocketWithMessage extends Duplex {
  _httpMessage?: { headersSent?: boolean } | null;
}

/**
 * The responses of the actor's server (its `ServerResponse` option). Each one is its request's slot ticket
 * (request-slots.ts) and carries whether the actor counted it. Only fields live here: frameworks replace a
 * response's prototype (Express: `Object.setPrototypeOf(res, app.response)`), which drops any method a
 * subclass defines but keeps own fields. The counts are settled by a 'close' listener attached before the
 * app sees the response (createActorServer), which no framework removes.
 */
export interface ActorResponse extends http.ServerResponse, SlotTicket {
  /** Counted by handle(): only those are settled (Node answers some requests itself, a 417 for one). */
  countedByActor: boolean;
  /** `performance.now()` when the app was handed the request: its duration is counted from there. */
  arrivedAt: number;
}

class CountedResponse extends http.ServerResponse implements ActorResponse {
  slotRunning = false;
  slotRun?: () => void = undefined;
  countedByActor = false;
  arrivedAt = 0;
}

const START_NODE_DEADLINES = Symbol('starts Node keeping headersTimeout and requestTimeout');
const REQUEST_HANDLER = Symbol('the handler every request passes, whatever its HTTP version');
type ActorServer = http.Server & { [START_NODE_DEADLINES]?: () => void; [REQUEST_HANDLER]?: http.RequestListener };

/**
 * The handler the actor's server gives each request: rules, limits, counting, access log, hooks, then the
 * app. HTTP/2 streams (http2-sessions.ts) pass it too.
 */
export function requestHandlerOf(server: http.Server): http.RequestListener {
  const handle = (server as ActorServer)[REQUEST_HANDLER];
  if (!handle) throw new Error('not an actor server');
  return handle;
}

/**
 * Has Node's server keep its own header and request deadlines (headersTimeout, requestTimeout) for the
 * connections it is given from now on: transferred sockets, whose bytes it reads natively. Once per server.
 */
export function startNodeDeadlines(server: http.Server): void {
  (server as ActorServer)[START_NODE_DEADLINES]?.();
}

const QUEUED = Symbol('pipelined responses waiting on this socket');
type SocketWithQueue = Duplex & { [QUEUED]?: Set<ActorResponse> };

/** Settles `res` when its socket closes, if it has not emitted 'close' by then. */
function settleWithSocket(socket: SocketWithQueue, res: ActorResponse, settle: (res: ActorResponse) => void): void {
  let queued = socket[QUEUED];
  if (!queued) {
    const waiting = new Set<ActorResponse>();
    queued = socket[QUEUED] = waiting;
    socket.on('close', () => {
      for (const response of waiting) settle(response);
      waiting.clear();
    });
  }
  queued.add(res);
  const set = queued;
  res.once('close', () => set.delete(res));
}

/** Requests this actor is answering and has answered; read by the actor's stats(). */
export interface RequestCounters {
  inFlight: number;
  served: number;
  /** Called after each response closes, with `served` already counted. */
  afterResponse(): void;
}

/** What the actor's server is wired to. */
export interface ActorServerWiring {
  log: Logger;
  counters: RequestCounters;
  /** The requests-in-flight count main reads (request-slots.ts). */
  slots: RequestSlots;
  /** Responses by status class and duration, in memory main reads (request-metrics.ts). */
  metrics: RequestMetrics;
  drain: DrainMode;
  hooks: ActorHooks;
  actorId: number;
  emitAccessLine?: (line: string) => void;
  /** Options for Node's server beyond the actor's own (h2c-upgrade.ts needs its request class). */
  serverOptions?: http.ServerOptions;
  /** `--sticky-sessions`: answers requests and upgrades for another actor's session through that actor (session-forwarding.ts). */
  forwardSession?: {
    request(owner: number, req: http.IncomingMessage, res: http.ServerResponse): void;
    upgrade(owner: number, req: http.IncomingMessage, socket: Duplex, head: Buffer): void;
  };
}

/** Counts a response's body bytes as they are written, for the access log's %(b)s. */
function countBodyBytes(res: http.ServerResponse): () => number | undefined {
  const declared = () => {
    const length = res.getHeader('content-length');
    return length === undefined ? undefined : Number(length);
  };
  let written = 0;
  const write = res.write;
  res.write = function (this: http.ServerResponse, chunk: unknown, ...rest: unknown[]) {
    if (typeof chunk === 'string') written += Buffer.byteLength(chunk);
    else if (chunk instanceof Uint8Array) written += chunk.byteLength;
    return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest);
  } as typeof res.write;
  const end = res.end;
  res.end = function (this: http.ServerResponse, chunk?: unknown, ...rest: unknown[]) {
    if (typeof chunk === 'string') written += Buffer.byteLength(chunk);
    else if (chunk instanceof Uint8Array) written += chunk.byteLength;
    return (end as (...args: unknown[]) => http.ServerResponse).call(this, chunk, ...rest);
  } as typeof res.end;
  return () => declared() ?? written;
}

export function createActorServer(
  app: LoadedApp,
  settings: HttpSettings,
  { log, counters, slots, metrics, drain, hooks, actorId, emitAccessLine = () => {}, serverOptions, forwardSession }: ActorServerWiring,
): http.Server {
  const guarded = guardListener(app.listener, log);
  const { preRequest, postRequest } = hooks;
  // Gives back a request's counts, once: when its response closes, or when its connection died first.
  const settle = (res: ActorResponse): void => {
    if (!res.countedByActor) return;
    res.countedByActor = false;
    counters.inFlight--;
    slots.release(res);
    counters.served++;
    metrics.record(res.headersSent ? res.statusCode : 0, (performance.now() - res.arrivedAt) / 1000);
    counters.afterResponse();
  };
  const { accessLogFormat } = settings;
  const forwarding = createForwardingPolicy(settings.forwardedAllowIps);
  const uploadRate = settings.bodyMinRate > 0 ? new UploadRateGuard(settings.bodyMinRate, log) : undefined;
  const rewriteScheme = app.kind === 'fetch';
  // Filled in by checkRequestHead for the request being wired; one object, reused (requests are wired one at a time).
  const facts: HeadFacts = { fields: 0, contentLength: undefined };
  const logAccess = (req: http.IncomingMessage, res: http.ServerResponse) => {
    if (accessLogFormat === null) return;
    const startedAt = process.hrtime.bigint();
    const { method, url = '' } = req;
    const bytes = countBodyBytes(res);
    res.once('close', () => {
      try {
        emitAccessLine(
          formatAccessLine(accessLogFormat, { req, method, url, res, startedAt, finishedAt: process.hrtime.bigint(), bytes: method === 'HEAD' ? 0 : bytes() }),
        );
      } catch (error) {
        log.error(`access log: ${String(error)}`);
      }
    });
  };
  // One function for every response (no closure per request); `this` is the response.
  function settleOnClose(this: ActorResponse): void {
    settle(this);
  }
  const handle: http.RequestListener = (req, res) => {
    const response = res as ActorResponse;
    counters.inFlight++;
    response.countedByActor = true;
    response.arrivedAt = performance.now();
    response.on('close', settleOnClose);
    // An HTTP/2 stream (http2-sessions.ts): its socket is the connection's, shared by every stream, and
    // there is no pipelining, keep-alive or parser leniency to account for.
    const stream = isHttp2Request(req);
    slots.take(req.socket, response);
    const socket = req.socket as Duplex & { [REQUESTS_SEEN]?: number };
    let fixup: ReturnType<typeof restoreRequest> | undefined;
    if (!stream) {
      socket[REQUESTS_SEEN] = (socket[REQUESTS_SEEN] ?? 0) + 1;
      fixup = settings.compat ? restoreRequest(req, socket[REQUESTS_SEEN]) : undefined;
      // A pipelined request waits for the one before it to be answered; on Node 20 its response never emits
      // 'close' if the connection dies meanwhile (Node 26 does). Settle such responses when the socket closes.
      if ((req.socket as SocketWithMessage)._httpMessage !== res) settleWithSocket(req.socket as SocketWithQueue, response, settle);
    } else {
      // The scheme is the transport's, never the client's `:scheme` (gunicorn 26.2): Fetch adapters build the URL from it.
      req.headers[':scheme'] = (req.socket as Duplex & { encrypted?: boolean }).encrypted ? 'https' : 'http';
    }
    logAccess(req, res);
    const rejection = fixup?.reject ?? checkRequestHead(req, settings.headLimits, settings.headerMap, facts);
    if (rejection) {
      log.debug(`refused ${req.method} ${req.url?.slice(0, 100)}: ${rejection.status} ${rejection.reason}`);
      refuse(res, rejection);
      return;
    }
    // The rules passed, so `facts` holds the fields they checked: no second lookup in req.headers for these.
    const hasBody = (facts.fields & TRANSFER_ENCODING) !== 0 || (facts.contentLength !== undefined && facts.contentLength !== '0');
    if (req.socket instanceof RelaySocket) req.socket.headArrived(req, hasBody);
    if (hasBody) {
      // An unread HTTP/2 body costs nothing to skip: the stream is reset, the connection carries on.
      if (!stream) capUnreadBody(req, res);
      uploadRate?.watch(req, res);
      if (isChunked(req)) refuseForbiddenTrailers(req, res, log);
    }
    const { limitRequestBody } = settings;
    if (limitRequestBody > 0) {
      if (declaredTooLarge(req, limitRequestBody)) {
        log.debug(`refused ${req.method} ${req.url?.slice(0, 100)}: 413 Content-Length ${req.headers['content-length']}`);
        answerTooLarge(res);
        return;
      }
      // A declared length is enforced by the parser; anything else (chunked) is counted as it arrives.
      if (facts.contentLength === undefined) countBody(req, res, limitRequestBody);
    }
    // A later request on a kept-alive connection may name another actor's session (a proxy's shared
    // upstream connection): that actor answers it. The first request of a connection is never forwarded:
    // main placed it, so if it names another actor, that actor is gone, and this one's answer (socket.io:
    // 400) starts a new session.
    const owner = forwardSession && !stream && (socket[REQUESTS_SEEN] ?? 0) > 1 ? sessionOwner(req.url) : undefined;
    if (owner !== undefined && owner !== actorId) {
      log.debug(`forwarding ${req.method} ${req.url?.slice(0, 100)} to actor ${owner}, which holds its session`);
      forwardSession!.request(owner, req, res);
      return;
    }
    const untrustworthy = facts.fields & FORWARDING ? forwarding.apply(req, rewriteScheme) : null;
    if (untrustworthy) {
      log.debug(`refused ${req.method} ${req.url?.slice(0, 100)}: 400 ${untrustworthy.reason}`);
      refuse(res, untrustworthy);
      return;
    }
    if (settings.requestTimeout > 0) armRequestDeadline(req, res, settings.requestTimeout, log);
    if (settings.closeAfterResponse || drain.active) res.shouldKeepAlive = false;
    if (preRequest || postRequest) {
      const actor = { actorId, server };
      callRequestHook('preRequest', preRequest, req, res, actor, log);
      if (postRequest) res.once('close', () => callRequestHook('postRequest', postRequest, req, res, actor, log));
    }
    if (settings.bufferChunkedBody > 0 && isChunked(req)) {
      bufferChunkedBody(req, res, settings.bufferChunkedBody, (buffered) => slots.start(response, guarded, buffered, res));
      return;
    }
    slots.start(response, guarded, req, res);
  };
  // gunicorn and the corpus accept HTTP/1.1 requests without Host; Node would answer them 400.
  const server: ActorServer = http.createServer(
    {
      ...serverOptions,
      ServerResponse: CountedResponse as unknown as typeof http.ServerResponse,
      requireHostHeader: false,
      headersTimeout: settings.headerTimeout * 1000,
      requestTimeout: settings.bodyTimeout * 1000,
      // How often Node checks those deadlines (its default is 30 s, too coarse for a 20 s header deadline).
      connectionsCheckingInterval: 1000,
    },
    handle,
  );
  // Node starts enforcing headersTimeout and requestTimeout when the server emits 'listening', which a server
  // fed by emit('connection') never does. Relayed connections do not need it (arrival-deadlines.ts); the
  // first transferred one starts it (startNodeDeadlines), with Node's own listener, so that the app's
  // 'listening' listeners never hear of a server that does not listen.
  const trackConnections = server.listeners('listening') as Array<(this: http.Server) => void>;
  server[START_NODE_DEADLINES] = () => {
    server[START_NODE_DEADLINES] = undefined;
    for (const track of trackConnections) track.call(server);
  };
  // `Expect`: Node emits 'checkContinue' and 'checkExpectation' only to listeners, and answers them itself
  // otherwise (100 then 'request'; 417). The actor's server listens when it must answer first (an oversized
  // upload gets 413 instead of an invitation) and whenever the app's own server may listen (hapi's
  // server.listener answers `Expect: 100-continue` per route: 404 before any body for an unknown path).
  // Either way the request passes handle(), counted and held to the rules, and reaches the app as the event
  // the app listens for.
  const appServer = app.ownServer;
  const appListens = (event: AppRequestEvent): boolean => (appServer?.listenerCount(event) ?? 0) > 0;
  if (settings.limitRequestBody > 0 || appServer) {
    server.on('checkContinue', (req: http.IncomingMessage, res: http.ServerResponse) => {
      // handle() answers the oversized one 413.
      if (settings.limitRequestBody > 0 && declaredTooLarge(req, settings.limitRequestBody)) handle(req, res);
      else if (appListens('checkContinue')) {
        routeAsAppEvent(req, 'checkContinue');
        handle(req, res);
      } else {
        res.writeContinue();
        handle(req, res);
      }
    });
  }
  if (appServer)
    server.on('checkExpectation', (req: http.IncomingMessage, res: http.ServerResponse) => {
      if (!appListens('checkExpectation')) {
        res.writeHead(417).end(); // what Node answers when nobody listens
        return;
      }
      routeAsAppEvent(req, 'checkExpectation');
      handle(req, res);
    });
  if (forwardSession) forwardForeignUpgrades(server, actorId, forwardSession.upgrade);
  if (settings.compat) {
    // An upgrade request is not counted as a request on its connection: it is the one after those counted.
    // Seen by wrapping emit rather than by listening: a listener of ours would make Node take every request
    // that asks to upgrade as an upgrade, and one the app does not listen for would never be answered.
    const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean;
    server.emit = (event: string | symbol, ...args: unknown[]): boolean => {
      if (event === 'upgrade') {
        const req = args[0] as http.IncomingMessage;
        restoreRequest(req, ((req.socket as Duplex & { [REQUESTS_SEEN]?: number })[REQUESTS_SEEN] ?? 0) + 1);
      }
      return emit(event, ...args);
    };
  }
  server.keepAliveTimeout = settings.keepAliveTimeoutMs;
  // Answer a request whose client half-closed after sending it, instead of aborting it (Node's default).
  (server as http.Server & { httpAllowHalfOpen: boolean }).httpAllowHalfOpen = true;

  server[REQUEST_HANDLER] = handle;
  server.on('clientError', (error: NodeJS.ErrnoException, socket: SocketWithMessage) => {
    // Bytes after a request that closes the connection are never parsed (RFC 9112 §9.6); the response to
    // that request is still under way and will close the connection.
    if (error.code === 'HPE_CLOSED_CONNECTION') return;
    if (socket.writable && !socket._httpMessage?.headersSent) {
      const status = statusForParseError(error.code);
      socket.write(`HTTP/1.1 ${status} ${STATUS_TEXT[status]}\r\nConnection: close\r\nContent-Length: 0\r\n\r\n`);
    }
    socket.destroy();
  });
  return server;
}

/**
 * `--sticky-sessions`: an upgrade request (engine.io's switch to WebSocket) for another actor's session, on
 * a connection that has carried requests before (a proxy's shared upstream connection), goes to that actor
 * instead of the app's 'upgrade' listeners here. Seen by wrapping emit, as with the compat settings below:
 * a listener of ours would make Node take every request that asks to upgrade as an upgrade.
 */
function forwardForeignUpgrades(
  server: http.Server,
  actorId: number,
  forward: (owner: number, req: http.IncomingMessage, socket: Duplex, head: Buffer) => void,
): void {
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean;
  server.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'upgrade') {
      const [req, socket, head] = args as [http.IncomingMessage, Duplex & { [REQUESTS_SEEN]?: number }, Buffer];
      const owner = (socket[REQUESTS_SEEN] ?? 0) > 0 ? sessionOwner(req.url) : undefined;
      if (owner !== undefined && owner !== actorId) {
        forward(owner, req, socket, head);
        return true;
      }
    }
    return emit(event, ...args);
  };
}

/**
 * A CONNECT request goes to the app like any method unless the app listens for 'connect' itself, on the
 * actor's server (onServer) or on its own (app-own-server.ts); Node would otherwise drop the connection
 * without an answer. Decided per request, since an app may add its listener at any time.
 */
export function routeConnectToApp(server: http.Server): void {
  const routeToApp = (req: http.IncomingMessage, socket: Duplex) => {
    if (server.listenerCount('connect') > 1) return;
    const res = new CountedResponse(req);
    res.shouldKeepAlive = false;
    res.assignSocket(socket as unknown as import('node:net').Socket);
    res.once('finish', () => socket.end());
    server.emit('request', req, res);
  };
  server.on('connect', routeToApp);
}
