/**
 * The http.Server an app built for itself: an exported `http.createServer(...)`, or Fastify's
 * `fastify.server`. That server never listens (the actor's server parses every request), but libraries
 * attach to it: `ws`'s `WebSocketServer({ server })`, socket.io's `io.attach(server)` and
 * @fastify/websocket listen for its 'upgrade' events, an app may listen for 'connect'.
 *
 * Node's server emits 'upgrade' only when it has an 'upgrade' listener of its own at the moment it parses
 * the request; without one it answers the request as a plain one (the 200 a WebSocket client would get).
 * So the actor's server carries a forwarding listener for each such event exactly while the app's server
 * has listeners for it, added and removed as the app adds and removes its own.
 */
import type { Server } from 'node:http';

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
