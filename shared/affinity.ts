/**
 * Session affinity (`--sticky-sessions`): a protocol whose client makes several requests that one actor's
 * memory must answer (socket.io's long-polling transport names its session in `?sid=`) needs each of them
 * to reach that actor, as node:cluster needs sticky sessions for the same reason. The actor that creates a
 * session names it after itself (`g<actor id>-<random>`: actors/engine-io-sessions.ts sets engine.io's
 * generateId); main reads the first request head of each new connection and hands a connection whose
 * request names such a session to that actor. Affinity is per connection, and an HTTP client pools its
 * connections (a proxy's upstream pool mixes clients on one): a kept-alive connection may later carry
 * another session's request to this actor. Such a request is forwarded to the session's actor
 * (actors/session-forwarding.ts). The first request of a connection is never forwarded: main routed it, so
 * if it names another actor, that actor is gone, and its answer (socket.io: 400) tells the client to start
 * a new session.
 */

/** Where an actor thread keeps its id for code loaded by the app (the socket.io adapter). */
export const ACTOR_ID_KEY = Symbol.for('grainbows.actorId');

const SESSION_PREFIX = /[?&]sid=g(\d+)-/;

/** The session id an actor gives out: its own id, then `random` (engine.io's own id, URL-safe). */
export function sessionIdFor(actorId: number, random: string): string {
  return `g${actorId}-${random}`;
}

/** The actor whose session a request target (or a whole request line) names, if it names one. */
export function sessionOwner(target: string | undefined): number | undefined {
  const match = target === undefined ? null : SESSION_PREFIX.exec(target);
  return match ? Number(match[1]) : undefined;
}

/** The actor whose session the request line at the start of `head` names, if it names one. */
export function actorOfSession(head: Buffer): number | undefined {
  const lineEnd = head.indexOf(0x0a);
  return sessionOwner(head.toString('latin1', 0, lineEnd === -1 ? head.length : lineEnd));
}

/** The id of the actor this code runs in, or undefined outside an actor. */
export function currentActorId(): number | undefined {
  const id = (globalThis as Record<symbol, unknown>)[ACTOR_ID_KEY];
  return typeof id === 'number' ? id : undefined;
}

/** Set on the actor thread's global object when the app builds grainbows/socket.io's adapter (any copy of it). */
const SHARED_ADAPTER_KEY = Symbol.for('grainbows.socket.io.adapter');

/** The app built the adapter that carries socket.io's broadcasts across actors. */
export function noteSharedAdapter(): void {
  (globalThis as Record<symbol, unknown>)[SHARED_ADAPTER_KEY] = true;
}

/** Did the app build that adapter in this thread? */
export function sharedAdapterBuilt(): boolean {
  return (globalThis as Record<symbol, unknown>)[SHARED_ADAPTER_KEY] === true;
}

/** socket.io's default path: a request under it is socket.io's (engine.io's handshake, polling, upgrade). */
export const SOCKET_IO_PATH = '/socket.io/';
