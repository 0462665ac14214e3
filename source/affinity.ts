/**
 * Session affinity (`--sticky-sessions`): a protocol whose client makes several requests that one actor's
 * memory must answer (socket.io's long-polling transport names its session in `?sid=`) needs each of them
 * to reach that actor, as node:cluster needs sticky sessions for the same reason. The actor that creates a
 * session names it after itself (`g<actor id>-<random>`: the socket.io adapter sets engine.io's
 * generateId); main reads the first request head of each new connection and hands a connection whose
 * request names such a session to that actor. Affinity is per connection, so the actor closes the
 * connection after each engine.io request: a kept-alive one could carry another client's request (an
 * HTTP client pools its connections) to the wrong actor.
 */

/** Where an actor thread keeps its id for code loaded by the app (the socket.io adapter). */
export const ACTOR_ID_KEY = Symbol.for('grainbows.actorId');

const SESSION_PREFIX = /[?&]sid=g(\d+)-/;

/** The session id an actor gives out: its own id, then `random` (engine.io's own id, URL-safe). */
export function sessionIdFor(actorId: number, random: string): string {
  return `g${actorId}-${random}`;
}

/** The actor whose session the request line at the start of `head` names, if it names one. */
export function actorOfSession(head: Buffer): number | undefined {
  const lineEnd = head.indexOf(0x0a);
  const line = head.toString('latin1', 0, lineEnd === -1 ? head.length : lineEnd);
  const match = SESSION_PREFIX.exec(line);
  return match ? Number(match[1]) : undefined;
}

/** The id of the actor this code runs in, or undefined outside an actor. */
export function currentActorId(): number | undefined {
  const id = (globalThis as Record<symbol, unknown>)[ACTOR_ID_KEY];
  return typeof id === 'number' ? id : undefined;
}

/** An engine.io request (socket.io's transport: `?EIO=4&transport=...`), handshake or session. */
export function isSessionProtocolRequest(url: string | undefined): boolean {
  return url !== undefined && url.includes('EIO=');
}
