/**
 * `grainbows/socket.io`: socket.io across the actors of one grainbows process.
 *
 * Each actor runs its own socket.io server, so `io.emit()` alone reaches only the clients connected to
 * the actor that emits. This adapter carries broadcasts, room changes, fetchSockets and serverSideEmit to
 * the other actors over a BroadcastChannel (every thread of the process hears it), on socket.io-adapter's
 * ClusterAdapterWithHeartbeat, the base of socket.io's own cluster adapter, which works the same over
 * node:cluster's IPC. It also names each engine.io session after its actor (affinity.ts), so that with
 * `--sticky-sessions` main sends the long-polling transport's later requests to the actor holding the
 * session; without that setting, a polling request that reaches another actor is answered 400 by
 * socket.io, and the first one is logged with the fix.
 *
 *   import { createAdapter } from 'grainbows/socket.io';
 *   const io = new Server(httpServer, { adapter: createAdapter() });
 */
import { randomBytes } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { BroadcastChannel } from 'node:worker_threads';
import { ClusterAdapterWithHeartbeat, type ClusterAdapterOptions, type ClusterMessage, type ClusterResponse, type ServerId } from 'socket.io-adapter';
import { currentActorId, noteSharedAdapter, sessionIdFor, sessionOwner } from '../shared/affinity.js';

const CHANNEL = 'grainbows.socket.io';

/** What crosses the channel: a message for every actor, or a response for the one that asked. */
type ChannelMessage = { message: ClusterMessage } | { responseTo: ServerId; response: ClusterResponse };

/** The parts of socket.io's Namespace and engine.io's Server this adapter touches. */
interface EngineLike {
  generateId(req: IncomingMessage): string;
  on(event: 'connection_error', listener: (error: { req: IncomingMessage; code: number }) => void): unknown;
}
interface NamespaceLike {
  name: string;
  server: { engine?: EngineLike };
}

/** engine.io's error code for a request naming a session this server does not have. */
const UNKNOWN_SID = 1;
const sessionsNamed = new WeakSet<EngineLike>();

/** Makes an engine name its sessions after this actor, and explain sessions that reached the wrong one. */
function nameSessionsAfterActor(engine: EngineLike, actorId: number): void {
  if (sessionsNamed.has(engine)) return;
  sessionsNamed.add(engine);
  engine.generateId = () => sessionIdFor(actorId, randomBytes(15).toString('base64url'));
  let explained = false;
  engine.on('connection_error', ({ req, code }) => {
    if (explained || code !== UNKNOWN_SID) return;
    const owner = sessionOwner(req.url);
    if (owner === undefined || owner === actorId) return;
    explained = true;
    console.warn(
      `grainbows/socket.io: a request for a session of actor ${owner} reached actor ${actorId} and was refused (400): run grainbows with --sticky-sessions, or have clients use transports: ['websocket']`,
    );
  });
}

class ActorChannelAdapter extends ClusterAdapterWithHeartbeat {
  private readonly channel = new BroadcastChannel(CHANNEL);

  constructor(nsp: NamespaceLike, options: ClusterAdapterOptions) {
    super(nsp, options);
    (this.channel as BroadcastChannel & { unref(): void }).unref();
    this.channel.onmessage = (event) => this.receive((event as { data: ChannelMessage }).data);
    const actorId = currentActorId();
    // The engine is attached after the namespaces (and their adapters) are made: look once the constructor of io is done.
    if (actorId !== undefined)
      process.nextTick(() => {
        if (nsp.server.engine) nameSessionsAfterActor(nsp.server.engine, actorId);
      });
  }

  private receive(data: ChannelMessage): void {
    if ('message' in data) this.onMessage(data.message);
    else if (data.responseTo === this.uid) this.onResponse(data.response);
  }

  protected override doPublish(message: ClusterMessage): Promise<string> {
    this.channel.postMessage({ message } satisfies ChannelMessage);
    return Promise.resolve('');
  }

  protected override doPublishResponse(requesterUid: ServerId, response: ClusterResponse): Promise<void> {
    this.channel.postMessage({ responseTo: requesterUid, response } satisfies ChannelMessage);
    return Promise.resolve();
  }

  override close(): void {
    super.close();
    this.channel.close();
  }
}

/** The adapter factory for `new Server(httpServer, { adapter: createAdapter() })` or `io.adapter(createAdapter())`. */
export function createAdapter(options: ClusterAdapterOptions = {}): (nsp: NamespaceLike) => ActorChannelAdapter {
  noteSharedAdapter();
  // socket.io calls it with `new`: a plain function (not an arrow) whose result replaces `this`.
  return function (nsp: NamespaceLike) {
    return new ActorChannelAdapter(nsp, options);
  };
}
