/**
 * dup(2) and close(2) for the transfer hand-off on runtimes that cannot move a `net.Socket` to a worker
 * thread (Node 20 and 22). The main thread copies an accepted socket's descriptor, posts the copy's number,
 * and closes its own; the actor opens a `net.Socket` on the copy. Each thread then owns a descriptor of its
 * own: sharing one number between two event loops is unsafe (docs/design.md, pitfall 9: the kernel reuses a closed number,
 * and one thread closes the other's live connection).
 *
 * Node has no dup(), so the call goes through the C library (libc.ts; where it cannot load, grainbows
 * relays). Not on Windows, where a socket is a handle and `_handle.fd` is -1.
 *
 * One leak is accepted: a copy posted to an actor whose thread dies before it reads the message stays open
 * (a number in a dropped message; main cannot close it, since the actor may have opened and closed it
 * already and the number may be someone else's by now). The window is one message's flight.
 */
import type { Socket } from 'node:net';
import { libc } from './libc.js';

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

async function loadCopier(): Promise<DescriptorCopier | undefined> {
  const library = await libc();
  if (!library) return undefined;
  try {
    const dup = library.func('int dup(int fd)') as (fd: number) => number;
    const close = library.func('int close(int fd)') as (fd: number) => number;
    return { dup, close };
  } catch {
    return undefined;
  }
}

/** The descriptor under an accepted TCP socket; undefined on Windows (-1 there) or once it is closed. */
export function descriptorOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
