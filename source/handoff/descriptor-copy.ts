/**
 * A close-on-exec dup(2), and close(2), for the transfer hand-off on runtimes that cannot move a `net.Socket` to a worker
 * thread (Node 20 and 22). The main thread copies an accepted socket's descriptor, posts the copy's number,
 * and closes its own; the actor opens a `net.Socket` on the copy. Each thread then owns a descriptor of its
 * own: sharing one number between two event loops is unsafe (docs/design.md, pitfall 9: the kernel reuses a closed number,
 * and one thread closes the other's live connection).
 *
 * Node has no dup(), so the call goes through the C library (libc.ts; where it cannot load, grainbows
 * relays). Not on Windows, where a socket is a handle and `_handle.fd` is -1.
 *
 * The copy is made close-on-exec (`fcntl(F_DUPFD_CLOEXEC)`, as every descriptor Node opens is): a plain
 * dup() handed every client connection open at that moment to each process the app spawned, and to a
 * USR2 successor, which kept them open after grainbows closed its own.
 *
 * One leak is accepted: a copy posted to an actor whose thread dies before it reads the message stays open
 * (a number in a dropped message; main cannot close it, since the actor may have opened and closed it
 * already and the number may be someone else's by now). The window is one message's flight.
 */
import type { Socket } from 'node:net';
import { libc } from '../../shared/libc.js';

export interface DescriptorCopier {
  /** A new descriptor for the same open socket, or -1 (EMFILE and the like). */
  dup(fd: number): number;
  close(fd: number): number;
}

let loaded: Promise<DescriptorCopier | undefined> | undefined;

/** The copier, or undefined where this platform or installation has none (libc.ts). Loaded once. */
export function descriptorCopier(): Promise<DescriptorCopier | undefined> {
  loaded ??= loadCopier();
  return loaded;
}

/** fcntl(2)'s F_DUPFD_CLOEXEC on each platform libc.ts loads a C library for. */
const F_DUPFD_CLOEXEC: Partial<Record<NodeJS.Platform, number>> = { linux: 1030, darwin: 67, freebsd: 17, openbsd: 10 };

async function loadCopier(): Promise<DescriptorCopier | undefined> {
  const library = await libc();
  const command = F_DUPFD_CLOEXEC[process.platform];
  if (!library || command === undefined) return undefined;
  try {
    // fcntl is variadic: koffi takes the type of each argument past `cmd` with it.
    const fcntl = library.func('int fcntl(int fd, int cmd, ...)') as (fd: number, cmd: number, ...typed: unknown[]) => number;
    const close = library.func('int close(int fd)') as (fd: number) => number;
    // The lowest free number from 0 up, as dup() picks.
    return { dup: (fd) => fcntl(fd, command, 'int', 0), close };
  } catch {
    return undefined;
  }
}

/** The descriptor under an accepted TCP socket; undefined on Windows (-1 there) or once it is closed. */
export function descriptorOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
