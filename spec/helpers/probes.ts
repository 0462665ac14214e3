/** Asking the system about a process, a port or a user, for tests that wait on one or need one. */
import { statSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { ROOT } from './servers.js';

/** Whether a process with this pid exists (signal 0 checks without sending anything). */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Whether a connection to 127.0.0.1:`port` is refused (nothing listens there). */
export function isRefused(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', (error: NodeJS.ErrnoException) => resolve(error.code === 'ECONNREFUSED'));
  });
}

/** Can an unprivileged user (nobody) reach the project's files? Not in a checkout inside a 0700 directory. */
function reachableByOthers(dir: string): boolean {
  for (let at = dir; ; at = path.dirname(at)) {
    if ((statSync(at).mode & 0o001) === 0) return false;
    if (path.dirname(at) === at) return true;
  }
}

/** For tests that start as root and drop to nobody, which must reach the project's files. */
export const AS_ROOT_FOR_NOBODY = {
  skip: process.getuid?.() !== 0 ? 'needs root' : !reachableByOthers(ROOT) ? 'the checkout is not reachable by other users' : false,
};
