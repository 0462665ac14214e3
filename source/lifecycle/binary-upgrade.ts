/**
 * Binary upgrade (USR2 on POSIX, `grainbows ctl upgrade` everywhere): a new grainbows process, started from
 * the same command line, takes over the listening sockets while the old one keeps serving; once the new one
 * reports ready, the old one stops gracefully (its in-flight requests finish) and exits.
 *
 * Node cannot fork, and Windows has no fd inheritance worth the name, so the sockets travel the way
 * node:cluster shares them on every platform: as handles over the child's IPC channel. The new process
 * listens on the very same sockets, so the kernel's accept queue is never closed: no connection is refused
 * during the swap.
 *
 * Pidfile dance, as gunicorn's: during the swap the old process's pidfile is `PIDFILE.oldbin` and the new
 * one writes `PIDFILE.2`; when the old process is gone, the new one renames `PIDFILE.2` to `PIDFILE`.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, renameSync } from 'node:fs';
import type { Server } from 'node:net';
import { InheritedListener } from '../accept/inherited-listener.js';
import type { Logger } from '../../shared/log.js';
import { startEnvironment } from './start-environment.js';

/** Set in the new process's environment: the old process's pid. */
export const UPGRADE_FROM = 'GRAINBOWS_UPGRADE_FROM';

/** Most time the new process gets to become ready before the upgrade is abandoned. */
const READY_TIMEOUT_MS = 60_000;

type ListenerMessage = { kind: 'grainbows-listener'; index: number } | { kind: 'grainbows-listeners-done'; count: number };
/** From the new process: its actors are up, send the sockets (then: ready, or failed). */
type SuccessorMessage = { kind: 'send-listeners' } | { kind: 'ready' } | { kind: 'failed'; message: string; status: number };

export function upgradingFrom(): number | undefined {
  const pid = Number(process.env[UPGRADE_FROM]);
  return Number.isInteger(pid) && pid > 0 && process.send ? pid : undefined;
}

/**
 * In the old process: starts the new one, hands it the listening sockets and waits until it serves.
 * Rejects (and stops the new process) if it fails or is not ready in time; the old one then serves on.
 */
export async function startSuccessor(listening: Server[], pidfile: string, log: Logger): Promise<ChildProcess> {
  const oldbin = pidfile ? `${pidfile}.oldbin` : '';
  if (pidfile && existsSync(pidfile)) renameSync(pidfile, oldbin);
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    // With the start environment this process was started with (start-environment.ts): else it would start node once more.
    env: { ...process.env, ...startEnvironment(), [UPGRADE_FROM]: String(process.pid) },
    // On Windows libuv puts children in a job object that kills them when this process exits, unless they
    // are detached. On POSIX the successor stays in our process group, as gunicorn's new master does.
    detached: process.platform === 'win32',
    windowsHide: true,
  });
  log.info(`Upgrade: started process ${child.pid}`);
  try {
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`process ${child.pid} was not ready within ${READY_TIMEOUT_MS / 1000} s`)), READY_TIMEOUT_MS);
      child.on('message', (message: SuccessorMessage) => {
        if (message.kind === 'send-listeners') {
          // Only now, with its actors booted: a successor that fails to boot never took a connection.
          log.info(`Upgrade: process ${child.pid} has booted; handing it ${listening.length} listening sockets`);
          listening.forEach((server, index) => {
            const one: ListenerMessage = { kind: 'grainbows-listener', index };
            child.send(one, server);
          });
          const done: ListenerMessage = { kind: 'grainbows-listeners-done', count: listening.length };
          child.send(done);
          return;
        }
        clearTimeout(timer);
        if (message.kind === 'ready') resolve();
        else reject(new Error(`process ${child.pid} failed to start: ${message.message}`));
      });
      child.once('exit', (status, signal) => {
        clearTimeout(timer);
        reject(new Error(`process ${child.pid} exited (${signal ?? `status ${status}`}) before it was ready`));
      });
    });
  } catch (error) {
    if (child.exitCode === null) child.kill('SIGKILL');
    if (oldbin && existsSync(oldbin)) renameSync(oldbin, pidfile);
    throw error;
  }
  child.unref();
  child.channel?.unref();
  return child;
}

/** In the new process, once its actors are up: asks for the old one's listening sockets, in its bind order. */
export function receiveListeners(readsInMain: boolean): Promise<InheritedListener[]> {
  return new Promise((resolve, reject) => {
    const listeners: InheritedListener[] = [];
    const timer = setTimeout(() => reject(new Error('the old process did not hand over its listening sockets')), 10_000);
    const ask: SuccessorMessage = { kind: 'send-listeners' };
    const onMessage = (message: ListenerMessage, handle: unknown) => {
      // Synchronously, before the event loop can accept anything on it.
      if (message?.kind === 'grainbows-listener') listeners[message.index] = new InheritedListener(handle as Server, readsInMain);
      else if (message?.kind === 'grainbows-listeners-done') {
        clearTimeout(timer);
        process.off('message', onMessage);
        resolve(listeners);
      }
    };
    process.on('message', onMessage);
    process.send?.(ask);
  });
}

/** In the new process: when the old one has exited, take the pidfile's name. */
export function promoteWhenPredecessorExits(oldPid: number, pidfile: string, log: Logger): void {
  const poll = setInterval(() => {
    try {
      process.kill(oldPid, 0);
    } catch {
      clearInterval(poll);
      if (pidfile && existsSync(`${pidfile}.2`)) renameSync(`${pidfile}.2`, pidfile);
      log.info(`Upgrade complete: process ${oldPid} has exited; this process (${process.pid}) is the server now`);
    }
  }, 250);
  poll.unref();
}
