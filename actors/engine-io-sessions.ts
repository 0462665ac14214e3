/**
 * `--sticky-sessions` with any socket.io adapter: every engine.io server in this actor names its sessions
 * after the actor (`g<actor>-<random>`, shared/affinity.ts), so that main, and the other actors, can tell
 * where a long-polling request's session lives. grainbows/socket.io's own adapter names them so itself; the
 * adapters that reach past one process (@socket.io/redis-adapter, @socket.io/redis-streams-adapter, ...)
 * know nothing of actors. engine.io's `BaseServer.prototype.generateId` is the documented place to name
 * sessions ("Overwrite this method to generate your custom socket id"); it is replaced on the prototype, in
 * each copy of engine.io the app loaded, so servers made before and after alike use it. An app that gives
 * its own server a `generateId` keeps it: an own property wins over the prototype's.
 */
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { sessionIdFor } from '../shared/affinity.js';

const ENGINE_SERVER = /[\\/]node_modules[\\/]engine\.io[\\/]build[\\/]server\.js$/;
const NAMED = Symbol.for('grainbows.engine.io.sessions');

interface EnginePrototype {
  generateId(req: unknown): string | Promise<string>;
  [NAMED]?: true;
}

/**
 * Names the sessions of every engine.io copy loaded so far after `actorId`. engine.io is CommonJS, so an app
 * that imports socket.io from ESM still puts it in require's cache. Returns how many copies it changed now.
 */
export function nameEngineIoSessions(actorId: number): number {
  const cache = createRequire(import.meta.url).cache;
  let named = 0;
  for (const [file, loaded] of Object.entries(cache)) {
    if (!ENGINE_SERVER.test(file)) continue;
    const prototype = (loaded?.exports as { BaseServer?: { prototype: EnginePrototype } } | undefined)?.BaseServer?.prototype;
    if (!prototype || prototype[NAMED]) continue;
    prototype.generateId = () => sessionIdFor(actorId, randomBytes(15).toString('base64url'));
    prototype[NAMED] = true;
    named++;
  }
  return named;
}
