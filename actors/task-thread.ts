/**
 * A task thread: one thread of a task module's piscina pool (source/tasks/task-pools.ts), running the
 * module's calls through task-runner.ts. Results marked with `transfer()` move their buffers to main
 * (piscina's `move`); main's BroadcastChannel "closing" runs the taskThreadExit hook.
 */
import { threadId, workerData, BroadcastChannel, type MessagePort } from 'node:worker_threads';
import { Piscina } from 'piscina';
import type { TaskThreadCall, TaskThreadData, TaskThreadResult } from '../shared/task-protocol.js';
import { startTaskRunner } from './task-runner.js';

export type { HookTaskThread } from './task-runner.js';

const data = workerData as TaskThreadData;
const runner = await startTaskRunner(data, { module: data.moduleName, threadId, pid: process.pid }, ({ value, transfer }) => {
  const result: TaskThreadResult = { ok: true, value, transfer };
  if (transfer.length === 0) return result;
  return Piscina.move({ [Piscina.transferableSymbol]: transfer, [Piscina.valueSymbol]: result } as unknown as MessagePort) as unknown as TaskThreadResult;
});

const closing = new BroadcastChannel(data.closingChannel);
closing.unref();
closing.onmessage = async () => {
  await runner.exit();
  closing.postMessage({ exited: threadId });
  closing.close();
};

export default function runCall(call: TaskThreadCall): Promise<TaskThreadResult> {
  return runner.runCall(call);
}
