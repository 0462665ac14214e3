/**
 * The http.Server an app built for itself: an exported `http.createServer(...)`, or Fastify's
 * `fastify.server`. That server never listens (the actor's server parses every request), but libraries
 * attach to it: `ws`'s `WebSocketServer({ server })`, socket.io's `io.attach(server)` and
 * @fastify/websocket listen for its 'upgrade' events, an app may listen for 'connect'.
 *
 * `Expect` requests reach the app's server as 'checkContinue' or 'checkExpectation' when it listens for them
 * (request-pipeline.ts decides, routeAsAppEvent marks).
 *
 * Node's server emits 'upgrade' only when it has an 'upgrade' listener of its own at the moment it parses
 * the request; without one it answers the request as a plain one (the 200 a WebSocket client would get).
 * So the actor's server carries a forwarding listener for each such event exactly while the app's server
 * has listeners for it, added and removed as the app adds and removes its own.
 */
import type { IncomingMessage, Server } from 'node:http';

/** The events an app's own server hears from the actor's server, besides 'request'. */
const FORWARDED_EVENTS = ['upgrade', 'connect'] as const;

export function forwardServerEvents(appServer: Server, actorServer: Server): void {
  for (const event of FORWARDED_EVENTS) {
    const forward = (...args: unknown[]): boolean => appServer.emit(event, ...args);
    let installed = false;
    const sync = (): void => {
      const wanted = appServer.listenerCount(event) > 0;
      if (wanted && !installed) actorServer.on(event, forward);
      else if (!wanted && installed) actorServer.off(event, forward);
      installed = wanted;
    };
    // 'newListener' fires before the listener is added, 'removeListener' after it is removed.
    appServer.on('newListener', (name: string | symbol) => {
      if (name === event && !installed) {
        actorServer.on(event, forward);
        installed = true;
      }
    });
    appServer.on('removeListener', (name: string | symbol) => {
      if (name === event) sync();
    });
    sync();
  }
}

/** The events an app's own server may answer a request with besides 'request': `Expect` (hapi listens). */
export type AppRequestEvent = 'request' | 'checkContinue' | 'checkExpectation';

const APP_EVENT = Symbol("the event the app's own server hears this request as");
type MarkedRequest = IncomingMessage & { [APP_EVENT]?: AppRequestEvent };

/**
 * The request goes to the app's own server as `event`: the actor's server heard it as that event (it listens
 * for both whenever the app's server might, request-pipeline.ts) and passes it through the handler every request
 * passes, whose app call then emits it under that name.
 */
export function routeAsAppEvent(req: IncomingMessage, event: AppRequestEvent): void {
  (req as MarkedRequest)[APP_EVENT] = event;
}

/** The event the app's own server should hear `req` as: 'request' unless routeAsAppEvent said otherwise. */
export function appEventOf(req: IncomingMessage): AppRequestEvent {
  return (req as MarkedRequest)[APP_EVENT] ?? 'request';
}
