/**
 * dup(2) and close(2) for the transfer hand-off on runtimes that cannot move a `net.Socket` to a worker
 * thread (Node 20 and 22). The main thread copies an accepted socket's descriptor, posts the copy's number,
 * and closes its own; the actor opens a `net.Socket` on the copy. Each thread then owns a descriptor of its
 * own: sharing one number between two event loops is unsafe (docs/design.md, pitfall 9: the kernel reuses a closed number,
 * and one thread closes the other's live connection).
 *
 * Node has no dup(), so the call goes through koffi, a maintained FFI library with prebuilt binaries for
 * Linux, macOS and the BSDs (an optional dependency: where it is missing or fails to load, grainbows relays).
 * Not on Windows, where a socket is a handle and `_handle.fd` is -1.
 *
 * One leak is accepted: a copy posted to an actor whose thread dies before it reads the message stays open
 * (a number in a dropped message; main cannot close it, since the actor may have opened and closed it
 * already and the number may be someone else's by now). The window is one message's flight.
 */
import type { Socket } from 'node:net';

export interface DescriptorCopier {
  /** A new descriptor for the same open socket, or -1 (EMFILE and the like). */
  dup(fd: number): number;
  close(fd: number): number;
}

/** Where each platform's C library is (koffi.load takes a file name the dynamic loader can find). */
const LIBC: Partial<Record<NodeJS.Platform, string[]>> = {
  linux: ['libc.so.6', 'libc.so'], // glibc, then musl
  darwin: ['libSystem.B.dylib'],
  freebsd: ['libc.so.7'],
  openbsd: ['libc.so'],
};

let loaded: Promise<DescriptorCopier | undefined> | undefined;

/** The copier, or undefined where this platform or installation has none. Loaded once. */
export function descriptorCopier(): Promise<DescriptorCopier | undefined> {
  loaded ??= loadCopier();
  return loaded;
}

async function loadCopier(): Promise<DescriptorCopier | undefined> {
  const candidates = LIBC[process.platform];
  if (!candidates) return undefined;
  let koffi: (typeof import('koffi'))['default'];
  try {
    koffi = (await import('koffi')).default;
  } catch {
    return undefined; // not installed (optional), or no prebuilt binary for this machine
  }
  for (const name of candidates) {
    try {
      const libc = koffi.load(name);
      const dup = libc.func('int dup(int fd)') as (fd: number) => number;
      const close = libc.func('int close(int fd)') as (fd: number) => number;
      return { dup, close };
    } catch {
      // try the next name
    }
  }
  return undefined;
}

/** The descriptor under an accepted TCP socket; undefined on Windows (-1 there) or once it is closed. */
export function descriptorOf(socket: Socket): number | undefined {
  const fd = (socket as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}
