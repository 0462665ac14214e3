/**
 * Stopping with the npm command that started us. `npx grainbows` and `npm start` run the command through
 * `sh -c`, and npm, when sent TERM, ends itself and that shell but not the shell's child: the server would
 * serve on with no process left that an operator or a supervisor could signal. So when npm started this
 * process, it watches its parent and stops gracefully (as on TERM) once the parent is gone, which POSIX
 * shows as this process being given a new parent.
 *
 * Only under npm: a server started from a shell with `&` is expected to outlive the shell, as gunicorn's
 * does. Never in a daemon (`-D`) or an upgrade's successor, whose parents exit on purpose.
 */

/** How often the parent is checked (a system call: cheap). */
const PARENT_CHECK_MS = 500;

/** Whether npm (`npm exec`, `npx`, `npm run`, `npm start`) started this process: npm sets these for what it runs. */
export function startedByNpm(env: NodeJS.ProcessEnv = process.env): boolean {
  return Boolean(env.npm_command || env.npm_lifecycle_event);
}

/** Calls `onGone` once, when this process's parent has ended. */
export function watchParent(onGone: (parentPid: number) => void): void {
  const parent = process.ppid;
  const timer = setInterval(() => {
    if (process.ppid === parent) return;
    clearInterval(timer);
    onGone(parent);
  }, PARENT_CHECK_MS).unref();
}
