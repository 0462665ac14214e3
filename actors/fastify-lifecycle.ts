/**
 * Fastify's lifecycle around a server that grainbows' main thread listens for.
 *
 * Fastify runs its onListen hooks from `listen()` and its preClose/onClose hooks from `close()`. In an actor,
 * `fastify.server` never listens: the actor's own server parses requests and hands them to Fastify's router.
 * So when main's listeners are open, the actor has Fastify listen with the server's `listen()` answered at
 * once and `address()` answering main's first listening address: the onListen hooks run, and Fastify's
 * "Server listening at" line and `fastify.server.address()` name the address clients really use. At the
 * actor's stop, `fastify.close()` runs the close hooks; closing a server that never listened is a case
 * Fastify handles (ERR_SERVER_NOT_RUNNING).
 */
import type { Server } from 'node:http';
import type { ListeningAddress } from '../shared/actor-protocol.js';

export interface FastifyInstanceLike {
  server: unknown;
  listen(options: { port?: number; host?: string; path?: string }): Promise<unknown>;
  close(): Promise<unknown>;
}

export async function announceListening(fastify: FastifyInstanceLike, addresses: ListeningAddress[]): Promise<void> {
  const server = fastify.server as Server;
  const address = addresses[0];
  if (address === undefined) return;
  server.address = () => address;
  const listen = server.listen;
  server.listen = function (this: Server) {
    process.nextTick(() => server.emit('listening'));
    return this;
  } as Server['listen'];
  try {
    await fastify.listen(typeof address === 'string' ? { path: address } : { host: address.address, port: address.port });
  } finally {
    server.listen = listen;
  }
}
