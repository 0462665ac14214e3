/**
 * Marking a descriptor close-on-exec (fcntl(2) F_SETFD FD_CLOEXEC), for the sockets Node moves to an actor
 * thread (Node 24 and later): the descriptor Node gives the receiving thread lacks the flag, so every process
 * the app started (and a USR2 successor) inherited each connection open at that moment, and kept it open
 * after grainbows closed its own. Every other descriptor grainbows holds is close-on-exec already: Node
 * opens its own so, and source/handoff/descriptor-copy.ts copies with F_DUPFD_CLOEXEC.
 *
 * The reverse, for the few a new program must inherit: stdio and the `fd://N` binds when the CLI replaces
 * its process with node started again (source/cli/exec-in-place.ts).
 */
import { libc } from './libc.js';

/** F_SETFD and FD_CLOEXEC: the same numbers on Linux, macOS and the BSDs. */
const F_SETFD = 2;
const FD_CLOEXEC = 1;

/** Marks a descriptor close-on-exec; returns false where it could not. */
export type CloseOnExec = (fd: number) => boolean;

/** The marker, or undefined where the C library cannot be loaded (libc.ts: koffi is optional; never on Windows). */
export async function closeOnExecMarker(): Promise<CloseOnExec | undefined> {
  return closeOnExecSetter(FD_CLOEXEC);
}

/** The opposite marker: the descriptor stays open across execve. Undefined where closeOnExecMarker is. */
export async function keepOpenOnExecMarker(): Promise<CloseOnExec | undefined> {
  return closeOnExecSetter(0);
}

async function closeOnExecSetter(flags: number): Promise<CloseOnExec | undefined> {
  const library = await libc();
  if (!library) return undefined;
  try {
    // fcntl is variadic: koffi takes the type of each argument past `cmd` with it.
    const fcntl = library.func('int fcntl(int fd, int cmd, ...)') as (fd: number, cmd: number, ...typed: unknown[]) => number;
    return (fd) => fcntl(fd, F_SETFD, 'int', flags) === 0;
  } catch {
    return undefined;
  }
}
