/**
 * What runs a task module's calls, in a task thread (task-thread.ts) or a task process (task-process.ts):
 * it imports the module once, so what the module keeps at its top level (a model, a cache, a connection)
 * lives as long as the worker, runs the taskThreadInit hook, and runs one call at a time: the function's
 * return value, or, for a generator, its values streamed over the call's own port, `STREAM_WINDOW` ahead of
 * the reader at most.
 *
 * Each call's result is returned as a TaskThreadResult value, never thrown: a thrown Error would reach
 * main without its own properties (shared/task-protocol.ts, ThrownValue).
 */
import type { MessagePort, Transferable } from 'node:worker_threads';
import { createLogger } from '../shared/log.js';
import { callHook, loadTaskHooks } from '../shared/hooks.js';
import {
  LIST_EXPORTS,
  STREAM_WINDOW,
  TaskError,
  thrownValueOf,
  unwrapMoved,
  type StreamControl,
  type StreamItem,
  type TaskThreadCall,
  type TaskThreadData,
  type TaskThreadResult,
} from '../shared/task-protocol.js';

/** What a hook is told of the task worker it runs in: a thread's id, or a process's pid (its threadId is 0). */
export interface HookTaskThread {
  module: string;
  threadId: number;
  pid: number;
}

export interface TaskRunner {
  runCall(call: TaskThreadCall): Promise<TaskThreadResult>;
  /** Runs the taskThreadExit hook (the pool is closing). */
  exit(): Promise<void>;
}

/**
 * Loads the module and the hooks; a module that throws while loading rejects. `moveResult` turns a value
 * and the buffers marked to move with it into the result (a thread moves them; a process copies anyway).
 */
export async function startTaskRunner(
  data: TaskThreadData,
  self: HookTaskThread,
  moveResult: (moved: { value: unknown; transfer: Transferable[] }) => TaskThreadResult,
): Promise<TaskRunner> {
  const log = createLogger(data.logLevel);
  const namespace = (await import(data.moduleUrl)) as Record<string, unknown>;
  const functions = new Map<string, (...args: unknown[]) => unknown>();
  for (const [name, value] of Object.entries(namespace)) if (typeof value === 'function') functions.set(name, value as (...args: unknown[]) => unknown);
  const hooks = await loadTaskHooks(data.hooksFile);
  await callHook('taskThreadInit', hooks.taskThreadInit, [self], log);

  return {
    async runCall(call) {
      if (call.fn === LIST_EXPORTS) return { ok: true, value: [...functions.keys()], transfer: [] };
      const fn = functions.get(call.fn);
      try {
        if (!fn) throw new TaskError('E_TASK_UNKNOWN', `${data.moduleName} exports no function '${call.fn}'`);
        const result = fn(...call.args);
        if (call.stream) {
          await streamInto(call.stream, result, `${data.moduleName}:${call.fn}`);
          return { ok: true, value: undefined, transfer: [] };
        }
        return moveResult(unwrapMoved(await result));
      } catch (error) {
        call.stream?.close();
        return { ok: false, error: thrownValueOf(error) };
      }
    },
    exit: () => callHook('taskThreadExit', hooks.taskThreadExit, [self], log),
  };
}

function isAsyncIterable(value: unknown): value is AsyncIterable<unknown> | Iterable<unknown> {
  return value !== null && typeof value === 'object' && (Symbol.asyncIterator in value || Symbol.iterator in value);
}

/**
 * Sends a generator's values to the reader, pausing while it has `STREAM_WINDOW` unread; a cancel from the
 * reader ends the generator (its `finally` runs) and the call with it.
 */
async function streamInto(port: MessagePort, result: unknown, name: string): Promise<void> {
  if (!isAsyncIterable(result)) throw new TaskError('E_TASK_NOT_A_GENERATOR', `${name} returned no generator to stream (use runTask for a single value)`);
  const iterator = Symbol.asyncIterator in result ? result[Symbol.asyncIterator]() : (result as Iterable<unknown>)[Symbol.iterator]();
  let credit = STREAM_WINDOW;
  let cancelled = false;
  let wake: (() => void) | undefined;
  port.on('message', (control: StreamControl) => {
    if (control.kind === 'credit') credit += control.credit;
    else cancelled = true;
    wake?.();
  });
  const send = (item: StreamItem) => port.postMessage(item);
  try {
    while (!cancelled) {
      if (credit <= 0) {
        await new Promise<void>((resolve) => (wake = resolve));
        wake = undefined;
        continue;
      }
      const step = await iterator.next();
      if (step.done) {
        send({ kind: 'end' });
        return;
      }
      credit--;
      const { value, transfer } = unwrapMoved(step.value);
      port.postMessage({ kind: 'value', value } satisfies StreamItem, transfer);
    }
    await iterator.return?.();
  } catch (error) {
    send({ kind: 'error', error: thrownValueOf(error) });
  } finally {
    port.close();
  }
}
