/**
 * Server hooks from the config file (gunicorn's server hooks, in camelCase). Main-thread hooks run in the
 * CLI (onStarting, whenReady, onReload, onExit); actor hooks run in every actor thread, which imports the
 * config file itself since functions cannot cross threads (actorInit, actorExit, preRequest, postRequest);
 * task hooks run in every task thread, which imports it too (taskThreadInit, taskThreadExit: gunicorn's
 * dirty_worker_init and dirty_worker_exit, accepted under those names as well).
 * A hook that throws or rejects is logged and the server carries on.
 */
import type { IncomingMessage, ServerResponse, Server } from 'node:http';
import { pathToFileURL } from 'node:url';
import { describeError, type Logger } from './log.js';

/** Hook names with their snake_case config-file spelling accepted too. */
export const MAIN_HOOKS = ['onStarting', 'whenReady', 'onReload', 'onExit'] as const;
export const ACTOR_HOOKS = ['actorInit', 'actorExit', 'preRequest', 'postRequest'] as const;
export const TASK_HOOKS = ['taskThreadInit', 'taskThreadExit'] as const;
export type MainHookName = (typeof MAIN_HOOKS)[number];
export type ActorHookName = (typeof ACTOR_HOOKS)[number];
export type TaskHookName = (typeof TASK_HOOKS)[number];
export type HookName = MainHookName | ActorHookName | TaskHookName;

/** gunicorn's names for hooks grainbows spells differently. */
const GUNICORN_HOOK_NAMES: Record<string, HookName> = { dirtyWorkerInit: 'taskThreadInit', dirtyWorkerExit: 'taskThreadExit' };

export function findHookName(key: string): HookName | undefined {
  const camel = key.replace(/_([a-z])/g, (_, letter: string) => letter.toUpperCase());
  if (camel in GUNICORN_HOOK_NAMES) return GUNICORN_HOOK_NAMES[camel];
  return ([...MAIN_HOOKS, ...ACTOR_HOOKS, ...TASK_HOOKS] as readonly string[]).includes(camel) ? (camel as HookName) : undefined;
}

/** What an actor hook is told about the actor it runs in. */
export interface HookActor {
  actorId: number;
  server: Server;
}

export interface ActorHooks {
  actorInit?: (actor: HookActor) => unknown;
  actorExit?: (actor: HookActor) => unknown;
  preRequest?: (req: IncomingMessage, res: ServerResponse, actor: HookActor) => unknown;
  postRequest?: (req: IncomingMessage, res: ServerResponse, actor: HookActor) => unknown;
}

/** What a task thread's hooks are told of it (actors/task-thread.ts). */
export interface TaskHooks {
  taskThreadInit?: (thread: { module: string; threadId: number }) => unknown;
  taskThreadExit?: (thread: { module: string; threadId: number }) => unknown;
}

/** Calls a hook; what it throws or rejects with is logged, never thrown. */
export async function callHook(name: string, hook: ((...args: never[]) => unknown) | undefined, args: unknown[], log: Logger): Promise<void> {
  if (!hook) return;
  try {
    await (hook as (...args: unknown[]) => unknown)(...args);
  } catch (error) {
    log.error(`hook ${name} failed: ${describeError(error, true)}`);
  }
}

/** Per-request hooks run synchronously (a promise they return is only watched for rejection). */
export function callRequestHook(name: string, hook: ActorHooks['preRequest'], req: IncomingMessage, res: ServerResponse, actor: HookActor, log: Logger): void {
  if (!hook) return;
  try {
    const result = hook(req, res, actor);
    if (result instanceof Promise) result.catch((error: unknown) => log.error(`hook ${name} failed: ${describeError(error, true)}`));
  } catch (error) {
    log.error(`hook ${name} failed: ${describeError(error, true)}`);
  }
}

/** The actor hooks the config file defines (named exports, or keys of a default export object). */
export function loadActorHooks(configFile: string | null): Promise<ActorHooks> {
  return loadHooks(configFile, ACTOR_HOOKS) as Promise<ActorHooks>;
}

/** The task-thread hooks the config file defines. */
export function loadTaskHooks(configFile: string | null): Promise<TaskHooks> {
  return loadHooks(configFile, TASK_HOOKS) as Promise<TaskHooks>;
}

async function loadHooks(configFile: string | null, wanted: readonly HookName[]): Promise<Record<string, unknown>> {
  if (!configFile) return {};
  const namespace = (await import(pathToFileURL(configFile).href)) as Record<string, unknown>;
  const defaults = typeof namespace.default === 'object' && namespace.default !== null ? (namespace.default as Record<string, unknown>) : {};
  const hooks: Record<string, unknown> = {};
  for (const [key, value] of [...Object.entries(defaults), ...Object.entries(namespace)]) {
    const name = findHookName(key);
    if (name && wanted.includes(name) && typeof value === 'function') hooks[name] = value;
  }
  return hooks;
}
