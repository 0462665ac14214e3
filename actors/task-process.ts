/**
 * A task process (`--task-isolation process`): a child process that runs one task module's calls through
 * task-runner.ts, as a task thread does, but in its own address space, so that a native crash ends only
 * it. Main (source/tasks/task-processes.ts) starts it with the module's TaskThreadData in
 * GRAINBOWS_TASK_DATA and talks to it over the IPC channel (shared/task-protocol.ts, MainToTaskProcess).
 */
import { MessageChannel } from 'node:worker_threads';
import {
  thrownValueOf,
  type MainToTaskProcess,
  type StreamControl,
  type StreamItem,
  type TaskProcessToMain,
  type TaskThreadData,
} from '../shared/task-protocol.js';
import { startTaskRunner, type TaskRunner } from './task-runner.js';

const send = (message: TaskProcessToMain) => process.send?.(message);
const data = JSON.parse(process.env.GRAINBOWS_TASK_DATA ?? '{}') as TaskThreadData;

let runner: TaskRunner;
try {
  // Results cross the IPC channel as copies: there is nothing to move.
  runner = await startTaskRunner(data, { module: data.moduleName, threadId: 0, pid: process.pid }, ({ value }) => ({ ok: true, value, transfer: [] }));
} catch (error) {
  send({ kind: 'load-failed', error: thrownValueOf(error) });
  process.exit(1);
}

/** The reader's side of each streamed call in flight, by call id: main's credits go to it. */
const streams = new Map<number, MessagePort>();
type MessagePort = InstanceType<typeof MessageChannel>['port2'];

process.on('message', async (message: MainToTaskProcess) => {
  switch (message.kind) {
    case 'call': {
      const { id } = message;
      let drained: Promise<void> = Promise.resolve();
      let stream: InstanceType<typeof MessageChannel>['port1'] | undefined;
      if (message.stream) {
        const channel = new MessageChannel();
        stream = channel.port1;
        const reader = channel.port2;
        streams.set(id, reader);
        reader.on('message', (item: StreamItem) => send({ kind: 'item', id, item }));
        // Items posted before the runner closed its end arrive before 'close': only then is the stream whole.
        drained = new Promise((resolve) =>
          reader.once('close', () => {
            streams.delete(id);
            send({ kind: 'stream-closed', id });
            resolve();
          }),
        );
      }
      const result = await runner.runCall({ fn: message.fn, args: message.args, ...(stream ? { stream } : {}) });
      await drained;
      send({ kind: 'result', id, result });
      return;
    }
    case 'control':
      streams.get(message.id)?.postMessage(message.control satisfies StreamControl);
      return;
    case 'closing':
      await runner.exit();
      send({ kind: 'exited' });
      return;
  }
});
send({ kind: 'ready' });
// Main's end of the channel gone (main died): nothing will ask for work any more.
process.on('disconnect', () => process.exit(0));
