/**
 * Replacing this process with another program, execve(2): the same pid, the same parent, no launcher left
 * behind holding memory (the Node 20 launcher was 21 MB of PSS, docs/performance.md, Memory). Node's own
 * `process.execve` where it has one (22.15+ and 23.11+, POSIX); elsewhere on POSIX the C library's, through
 * koffi (shared/libc.ts). Node keeps the descriptors it starts with close-on-exec, so those the new program
 * must inherit are cleared first: the `fd://N` binds always, and stdio when calling the C library
 * (`process.execve` clears stdio itself).
 */
import { libc } from '../../shared/libc.js';
import { keepOpenOnExecMarker } from '../../shared/close-on-exec.js';

/** `process.execve` (Node 22.15+ and 23.11+, POSIX only), not yet in the Node 20 types this project builds with. */
type NodeExecve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;
/** The C library's execve through koffi: each array ends with null, as C expects. */
type LibcExecve = (file: string, args: (string | null)[], env: (string | null)[]) => number;

const STDIO = [0, 1, 2];

/**
 * Replaces this process with `file` run with `args` (args[0] included) and `env`, keeping `keepOpen` at
 * their numbers. Returns only where that cannot be done (Windows, no koffi, a failed execve): the caller
 * then starts the program as a child instead.
 */
export async function execInPlace(file: string, args: readonly string[], env: NodeJS.ProcessEnv, keepOpen: readonly number[] = []): Promise<void> {
  if (process.platform === 'win32') return;
  const nodeExecve = (process as NodeJS.Process & { execve?: NodeExecve }).execve;
  const keepOpenOnExec = await keepOpenOnExecMarker();
  if (keepOpen.length > 0 && (!keepOpenOnExec || !keepOpen.every(keepOpenOnExec))) return;
  if (typeof nodeExecve === 'function') {
    try {
      nodeExecve.call(process, file, [...args], env);
    } catch {
      return;
    }
  }
  const library = await libc();
  if (!library || !keepOpenOnExec || !STDIO.every(keepOpenOnExec)) return;
  let execve: LibcExecve;
  try {
    execve = library.func('int execve(const char *path, const char **argv, const char **envp)') as LibcExecve;
  } catch {
    return;
  }
  const pairs = Object.entries(env).flatMap(([name, value]) => (value === undefined ? [] : [`${name}=${value}`]));
  execve(file, [...args, null], [...pairs, null]); // returns only on failure
}
