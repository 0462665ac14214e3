/**
 * The C library through koffi, for the few system calls Node does not offer: dup(2) for the transfer
 * hand-off (source/handoff/descriptor-copy.ts), close-on-exec for moved sockets (close-on-exec.ts) and a
 * unix datagram to systemd (source/lifecycle/systemd.ts).
 *
 * koffi is a maintained FFI library with prebuilt binaries for Linux, macOS and the BSDs, and an optional
 * dependency: where it is missing or fails to load, callers fall back (grainbows relays; systemd is told
 * nothing and a warning says why). Never on Windows, which has no such library to call.
 */
import type { LibraryHandle } from 'koffi';

/** Where each platform's C library is (koffi.load takes a file name the dynamic loader can find). */
const LIBC: Partial<Record<NodeJS.Platform, string[]>> = {
  linux: ['libc.so.6', 'libc.so'], // glibc, then musl
  darwin: ['libSystem.B.dylib'],
  freebsd: ['libc.so.7'],
  openbsd: ['libc.so'],
};

let loaded: Promise<LibraryHandle | undefined> | undefined;

/** The C library, or undefined where this platform or installation cannot load it. Loaded once. */
export function libc(): Promise<LibraryHandle | undefined> {
  loaded ??= load();
  return loaded;
}

async function load(): Promise<LibraryHandle | undefined> {
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
      return koffi.load(name);
    } catch {
      // try the next name
    }
  }
  return undefined;
}
