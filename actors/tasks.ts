/**
 * `grainbows/tasks`: what an app calls to run heavy or blocking work on the task pool (`--tasks`), so that
 * its actor keeps serving the other requests meanwhile.
 *
 *   const n = await runTask('fib', 30);                          // one value
 *   for await (const line of streamTask('count', 5)) res.write(line); // a generator's values, as they come
 *   await runTask({ task: 'resize', signal, transfer: [image.buffer] }, image);
 *
 * A call names `function` (when one task module exports it) or `module:function`; `{ signal }` cancels it
 * (a generator's `finally` runs; a plain call still queued is dropped, and one running ends its thread,
 * which is replaced, since a synchronous function cannot be interrupted any other way); `{ transfer }`
 * moves ArrayBuffers (and MessagePorts) instead of copying them. In a task module, `transfer(value, list)`
 * moves what a function returns or yields. Errors: what the task threw, or a TaskError whose `code` says
 * why the pool ended the call (docs/errors.md).
 *
 * The actor installs the link to main (installTaskLink) on a global, so that an app that resolves its own
 * copy of this package reaches the same link.
 */
import { MessageChannel, type MessagePort, type Transferable } from 'node:worker_threads';
import {
  STREAM_WINDOW,
  TRANSFER_KEY,
  TaskError,
  errorOf,
  resolveTaskName,
  type ActorToMain,
  type Moved,
  type StreamControl,
  type StreamItem,
  type TaskCatalog,
  type TaskOutcome,
} from '../shared/task-protocol.js';

export { TaskError, type TaskErrorCode } from '../shared/task-protocol.js';

/** How a call names its task, and what it cancels or moves with. */
export interface TaskCall {
  /** `function`, or `module:function` (the module by its file name, with or without the extension). */
  task: string;
  /** Cancels the call (see the module's description). */
  signal?: AbortSignal;
  /** ArrayBuffers (or MessagePorts) in the arguments to move rather than copy; they are detached here. */
  transfer?: Transferable[];
}

// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a task's parameters are whatever the module declares
type AnyFunction = (...args: any[]) => unknown;
type StreamedItem<R> = R extends AsyncIterable<infer T> ? T : R extends Iterable<infer T> ? T : unknown;

/** Runs a task function on the task pool and resolves with what it returns. `runTask<typeof fib>('fib', 30)` types it. */
export function runTask<F extends AnyFunction = AnyFunction>(call: string | TaskCall, ...args: Parameters<F>): Promise<Unmoved<Awaited<ReturnType<F>>>> {
  try {
    return currentLink().run(callOf(call), args) as Promise<Unmoved<Awaited<ReturnType<F>>>>;
  } catch (error) {
    return Promise.reject(error);
  }
}

/**
 * Runs a task generator on the task pool and yields its values as they come. The generator runs at most
 * STREAM_WINDOW values ahead of this reader: a slow reader pauses it. Leaving the loop early ends it (its
 * `finally` runs).
 */
export function streamTask<F extends AnyFunction = AnyFunction>(
  call: string | TaskCall,
  ...args: Parameters<F>
): AsyncGenerator<Unmoved<StreamedItem<ReturnType<F>>>, void, undefined> {
  return currentLink().stream(callOf(call), args) as AsyncGenerator<Unmoved<StreamedItem<ReturnType<F>>>, void, undefined>;
}

/** In a task module: return or yield `transfer(value, [value.buffer])` to move the buffers instead of copying them. */
export function transfer<T>(value: T, list: readonly Transferable[]): Moved<T> {
  return { [TRANSFER_KEY]: list, value };
}

/** What a caller receives for a value the task marked with transfer(): the value itself. */
type Unmoved<T> = T extends Moved<infer V> ? V : T;

function callOf(call: string | TaskCall): TaskCall {
  return typeof call === 'string' ? { task: call } : call;
}

const LINK_KEY = Symbol.for('grainbows.tasks.link');

function currentLink(): TaskLink {
  const link = (globalThis as Record<symbol, TaskLink | undefined>)[LINK_KEY];
  if (!link) throw new TaskError('E_NO_TASK_POOL', 'no task pool here: runTask and streamTask work in an app served by grainbows with --tasks');
  return link;
}

/** Called by the actor at boot (actors/actor.ts): calls from its app go over `port` to main. */
export function installTaskLink(port: MessagePort, catalog: TaskCatalog): TaskLink {
  const link = new TaskLink(port, catalog);
  (globalThis as Record<symbol, TaskLink | undefined>)[LINK_KEY] = link;
  return link;
}

interface Pending {
  settle(outcome: TaskOutcome): void;
}

/** An actor's calls in flight, over its port to main (source/tasks/task-link.ts). */
export class TaskLink {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();

  constructor(
    private readonly port: MessagePort,
    private readonly catalog: TaskCatalog,
  ) {
    port.on('message', (outcome: TaskOutcome) => {
      const pending = this.pending.get(outcome.id);
      this.pending.delete(outcome.id);
      pending?.settle(outcome);
    });
  }

  run(call: TaskCall, args: unknown[]): Promise<unknown> {
    const { module, fn } = resolveTaskName(call.task, this.catalog);
    call.signal?.throwIfAborted();
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      const end = (cancel?: 'abort' | 'timeout') => {
        clearTimeout(timer);
        call.signal?.removeEventListener('abort', onAbort);
        this.pending.delete(id);
        if (cancel) this.post({ op: 'cancel', id, reason: cancel });
      };
      const onAbort = () => {
        end('abort');
        reject(call.signal?.reason);
      };
      const timer =
        this.catalog.timeoutMs > 0
          ? setTimeout(() => {
              end('timeout');
              reject(
                new TaskError(
                  'E_TASK_TIMEOUT',
                  `${module}:${fn} took longer than --task-timeout (${this.catalog.timeoutMs / 1000} s); its thread was replaced`,
                ),
              );
            }, this.catalog.timeoutMs)
          : undefined;
      call.signal?.addEventListener('abort', onAbort, { once: true });
      this.pending.set(id, {
        settle: (outcome) => {
          end();
          if (outcome.ok) resolve(outcome.value);
          else reject(errorOf(outcome.error));
        },
      });
      this.post({ op: 'call', id, module, fn, args, transfer: call.transfer ?? [] }, call.transfer);
    });
  }

  async *stream(call: TaskCall, args: unknown[]): AsyncGenerator<unknown, void, undefined> {
    const { module, fn } = resolveTaskName(call.task, this.catalog);
    call.signal?.throwIfAborted();
    const id = this.nextId++;
    const { port1: values, port2: producer } = new MessageChannel();
    const buffered: StreamItem[] = [];
    let wake: (() => void) | undefined;
    const arrive = (item: StreamItem) => {
      buffered.push(item);
      wake?.();
    };
    values.on('message', arrive);
    // The pool's own answer matters only when the call failed before or outside the generator (queue full,
    // thread died): a generator's end and errors come over its port, in order with its values.
    this.pending.set(id, { settle: (outcome) => (outcome.ok ? undefined : arrive({ kind: 'error', error: outcome.error })) });
    const onAbort = () => wake?.();
    call.signal?.addEventListener('abort', onAbort, { once: true });
    this.post({ op: 'call', id, module, fn, args, transfer: call.transfer ?? [], stream: producer }, [...(call.transfer ?? []), producer]);
    let ended = false;
    let consumed = 0;
    try {
      for (;;) {
        call.signal?.throwIfAborted();
        if (buffered.length === 0) {
          const timedOut = await this.nextArrival((resolve) => (wake = resolve));
          wake = undefined;
          if (timedOut) {
            ended = true;
            this.post({ op: 'cancel', id, reason: 'timeout' });
            throw new TaskError(
              'E_TASK_TIMEOUT',
              `${module}:${fn} gave no value for --task-timeout (${this.catalog.timeoutMs / 1000} s); its thread was replaced`,
            );
          }
          continue;
        }
        const item = buffered.shift() as StreamItem;
        if (item.kind === 'end') {
          ended = true;
          return;
        }
        if (item.kind === 'error') {
          ended = true;
          throw errorOf(item.error);
        }
        if (++consumed % (STREAM_WINDOW / 2) === 0) values.postMessage({ kind: 'credit', credit: STREAM_WINDOW / 2 } satisfies StreamControl);
        yield item.value;
      }
    } finally {
      call.signal?.removeEventListener('abort', onAbort);
      this.pending.delete(id);
      if (!ended) values.postMessage({ kind: 'cancel' } satisfies StreamControl);
      values.close();
    }
  }

  /** Waits for the next stream item (or an abort); true when `--task-timeout` passed first. */
  private nextArrival(arm: (resolve: () => void) => void): Promise<boolean> {
    return new Promise<boolean>((resolve) => {
      const timer = this.catalog.timeoutMs > 0 ? setTimeout(() => resolve(true), this.catalog.timeoutMs) : undefined;
      arm(() => {
        clearTimeout(timer);
        resolve(false);
      });
    });
  }

  private post(message: ActorToMain, transfer: readonly Transferable[] = []): void {
    this.port.postMessage(message, transfer);
  }

  /** Ends the link (the actor is stopping): calls still waiting end with E_TASK_POOL_CLOSED. */
  close(): void {
    for (const [id, pending] of this.pending)
      pending.settle({
        id,
        ok: false,
        error: { name: 'TaskError', message: 'the actor stopped before the call ended', props: { code: 'E_TASK_POOL_CLOSED' } },
      });
    this.pending.clear();
    this.port.close();
  }
}
