/**
 * The task pool's messages (docs/design.md, The task pool): between an actor and main (one port per actor,
 * actors/tasks.ts and source/tasks/task-link.ts), between main and a task thread (a piscina task,
 * actors/task-thread.ts), and on a streamed call's own port, which runs from the task thread straight to
 * the actor.
 *
 * These messages are structured clones, not msgpack frames: a call's arguments and results are any value
 * the app chooses (Maps, Dates, typed arrays, errors), and ArrayBuffers in them are transferred without a
 * copy at every hop, which a msgpack encoding would copy twice.
 */
import type { MessagePort, Transferable } from 'node:worker_threads';
import type { LogLevel } from './log.js';

/** What main gives every thread of a task module's pool (piscina's `workerData`; actors/task-thread.ts). */
export interface TaskThreadData {
  /** file: URL of the task module. */
  moduleUrl: string;
  /** Its name in calls and messages (`tasks.js`). */
  moduleName: string;
  /** The config file whose taskThreadInit and taskThreadExit hooks run there, if any. */
  hooksFile: string | null;
  logLevel: LogLevel;
  /** The BroadcastChannel on which main says "the pool is closing": the exit hooks run then. */
  closingChannel: string;
}

/** The call that lists a module's functions, made once per pool at start-up (it also proves the module loads). */
export const LIST_EXPORTS = '';

/** The task modules a pool serves, told to every actor so that a call is checked where it is made. */
export interface TaskCatalog {
  modules: TaskModuleInfo[];
  /** `--task-timeout` in milliseconds; 0 = none. */
  timeoutMs: number;
}

export interface TaskModuleInfo {
  /** How calls name it: the file's name (`tasks.js`). */
  name: string;
  /** Its exported functions, read once its threads loaded it. */
  exports: string[];
}

/** An actor asks main to run one call (`stream`: the port a generator's values go to, straight to the actor). */
export interface TaskCallMessage {
  op: 'call';
  id: number;
  module: string;
  fn: string;
  args: unknown[];
  /** What the caller moves with the arguments (`{ transfer }`): moved on to the task thread, not copied. */
  transfer: Transferable[];
  stream?: MessagePort;
}

/** An actor gives up on a call: its caller aborted, or it passed `--task-timeout`. */
export interface TaskCancelMessage {
  op: 'cancel';
  id: number;
  reason: 'abort' | 'timeout';
}

export type ActorToMain = TaskCallMessage | TaskCancelMessage;

/** How a call ended, main to actor. A streamed call's values went over its own port; this is its end. */
export type TaskOutcome = { id: number } & TaskThreadResult;

/** What a task thread is given: one call. */
export interface TaskThreadCall {
  fn: string;
  args: unknown[];
  stream?: MessagePort;
}

/** The thread's Transferables that a result moves on to the caller (marked with `transfer()`). */

/** What a task thread answers: an error the task threw comes back as a value, so that its own properties survive. */
export type TaskThreadResult = { ok: true; value: unknown; transfer: Transferable[] } | { ok: false; error: ThrownValue };

/**
 * A thrown value as it crosses threads. Structured cloning keeps an Error's message and stack but drops
 * its own properties (`code`, `status`) and the class of a subclass; this keeps them.
 */
export interface ThrownValue {
  name: string;
  message: string;
  stack?: string;
  /** Own enumerable properties that clone (`code`, `statusCode`, ...). */
  props: Record<string, unknown>;
  /** Set when what was thrown was not an Error. */
  value?: unknown;
}

/** Stream port, producer (task thread) to consumer (actor). */
export type StreamItem = { kind: 'value'; value: unknown } | { kind: 'end' } | { kind: 'error'; error: ThrownValue };
/** Stream port, consumer to producer: room for `credit` more values, or stop (the generator's `finally` runs). */
export type StreamControl = { kind: 'credit'; credit: number } | { kind: 'cancel' };

/** How many values a generator may run ahead of its reader before it pauses. */
export const STREAM_WINDOW = 16;

/** The coded errors a call can end with (docs/errors.md). */
export type TaskErrorCode =
  | 'E_TASK_TIMEOUT'
  | 'E_TASK_QUEUE_FULL'
  | 'E_TASK_THREAD_EXITED'
  | 'E_TASK_UNKNOWN'
  | 'E_NO_TASK_POOL'
  | 'E_TASK_POOL_CLOSED'
  | 'E_TASK_CANCELLED'
  | 'E_TASK_NOT_A_GENERATOR';

/** A call that the pool, not the task, ended. `code` says why; an app maps E_TASK_QUEUE_FULL to 503. */
export class TaskError extends Error {
  constructor(
    readonly code: TaskErrorCode,
    message: string,
  ) {
    super(message);
    this.name = 'TaskError';
  }
}

/** A thrown value, made ready to cross a thread. */
export function thrownValueOf(error: unknown): ThrownValue {
  if (!(error instanceof Error)) return { name: 'Error', message: String(error), props: {}, value: cloneable(error) ? error : String(error) };
  const props: Record<string, unknown> = {};
  for (const [key, value] of Object.entries(error)) if (cloneable(value)) props[key] = value;
  return { name: error.name, message: error.message, ...(error.stack ? { stack: error.stack } : {}), props };
}

/** The Error (or value) a ThrownValue stands for, rebuilt on this side: a TaskError when it carries one of ours. */
export function errorOf(thrown: ThrownValue): unknown {
  if ('value' in thrown) return thrown.value;
  const error =
    thrown.name === 'TaskError' && typeof thrown.props.code === 'string'
      ? new TaskError(thrown.props.code as TaskErrorCode, thrown.message)
      : new Error(thrown.message);
  if (error.name !== thrown.name) Object.defineProperty(error, 'name', { value: thrown.name, configurable: true, writable: true });
  if (thrown.stack) error.stack = thrown.stack;
  Object.assign(error, thrown.props);
  return error;
}

function cloneable(value: unknown): boolean {
  try {
    structuredClone(value);
    return true;
  } catch {
    return false;
  }
}

/**
 * A value to be moved, not copied, to the other thread: what `transfer(value, list)` returns
 * (actors/tasks.ts). Moving is never implicit, since it detaches the sender's buffers: a module that
 * returns a buffer it keeps (a cached table) must not lose it.
 */
export const TRANSFER_KEY = Symbol.for('grainbows.tasks.transfer');

export interface Moved<T = unknown> {
  [TRANSFER_KEY]: readonly Transferable[];
  value: T;
}

/** The value and what to move with it, if it was marked with `transfer()`; otherwise moves nothing. */
export function unwrapMoved(value: unknown): { value: unknown; transfer: Transferable[] } {
  if (value !== null && typeof value === 'object' && TRANSFER_KEY in value) {
    const moved = value as Moved;
    return { value: moved.value, transfer: [...moved[TRANSFER_KEY]] };
  }
  return { value, transfer: [] };
}

/**
 * Which module and function a call names: `module:fn` (the module by file name, with or without its
 * extension), or `fn` alone when exactly one module exports it. A TaskError when it names nothing.
 */
export function resolveTaskName(name: string, catalog: TaskCatalog): { module: string; fn: string } {
  if (catalog.modules.length === 0) throw new TaskError('E_NO_TASK_POOL', `no task pool: start grainbows with --tasks MODULE to call '${name}'`);
  const colon = name.lastIndexOf(':');
  if (colon > 0) {
    const wanted = name.slice(0, colon);
    const fn = name.slice(colon + 1);
    const module = catalog.modules.find((candidate) => candidate.name === wanted || candidate.name.replace(/\.[cm]?[jt]s$/, '') === wanted);
    if (!module) throw new TaskError('E_TASK_UNKNOWN', `no task module '${wanted}' (the pool has ${catalog.modules.map((m) => m.name).join(', ')})`);
    if (!module.exports.includes(fn)) throw new TaskError('E_TASK_UNKNOWN', `${module.name} exports no function '${fn}'`);
    return { module: module.name, fn };
  }
  const owners = catalog.modules.filter((module) => module.exports.includes(name));
  if (owners.length === 1) return { module: owners[0].name, fn: name };
  if (owners.length === 0)
    throw new TaskError('E_TASK_UNKNOWN', `no task module exports a function '${name}' (${catalog.modules.map((m) => m.name).join(', ')})`);
  throw new TaskError('E_TASK_UNKNOWN', `'${name}' is exported by ${owners.map((m) => m.name).join(' and ')}: call it as '${owners[0].name}:${name}'`);
}

/**
 * `--task-isolation process`: main and a task process (actors/task-process.ts) over Node's IPC channel
 * (advanced serialization: the same structured clones, copied). A streamed call's values come to main,
 * which passes them on to the actor's port, and the reader's credits go back the same way.
 */
export type MainToTaskProcess =
  { kind: 'call'; id: number; fn: string; args: unknown[]; stream: boolean } | { kind: 'control'; id: number; control: StreamControl } | { kind: 'closing' };

export type TaskProcessToMain =
  /** The module loaded (or did not: `error`, and the process exits). */
  | { kind: 'ready' }
  | { kind: 'load-failed'; error: ThrownValue }
  | { kind: 'item'; id: number; item: StreamItem }
  /** A streamed call's port closed: every item has been sent. */
  | { kind: 'stream-closed'; id: number }
  | { kind: 'result'; id: number; result: TaskThreadResult }
  /** The taskThreadExit hook ran. */
  | { kind: 'exited' };
