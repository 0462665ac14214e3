/**
 * Main's end of one actor's task port: each call the actor makes is run on the task pools, and its outcome
 * posted back, with what it moves. A cancel (the caller aborted, or `--task-timeout` passed) aborts the
 * call: piscina drops it from the queue, or ends the thread running it (a replacement starts). When the
 * actor ends, its calls still running are cancelled.
 */
import type { MessagePort } from 'node:worker_threads';
import type { ActorToMain, TaskOutcome } from '../../shared/task-protocol.js';
import type { TaskPools } from './task-pools.js';

/** Serves `port` until it closes; returns the function that detaches it (and cancels what is in flight). */
export function serveTaskPort(port: MessagePort, pools: () => TaskPools | undefined): () => void {
  const calls = new Map<number, AbortController>();
  port.on('message', (message: ActorToMain) => {
    if (message.op === 'cancel') {
      calls.get(message.id)?.abort(message.reason);
      return;
    }
    const controller = new AbortController();
    calls.set(message.id, controller);
    const running = pools();
    const outcome = running
      ? running.run(message, controller.signal)
      : Promise.resolve({ ok: false as const, error: { name: 'TaskError', message: 'no task pool', props: { code: 'E_NO_TASK_POOL' } } });
    void outcome.then((result) => {
      calls.delete(message.id);
      if (controller.signal.aborted) return; // the actor has already answered its caller
      const reply: TaskOutcome = { id: message.id, ...result };
      try {
        port.postMessage(reply, result.ok ? result.transfer : []);
      } catch {
        // The actor has ended, or the value does not clone: the call is over either way.
      }
    });
  });
  const detach = () => {
    for (const controller of calls.values()) controller.abort('abort');
    calls.clear();
    port.close();
  };
  port.once('close', detach);
  return detach;
}
