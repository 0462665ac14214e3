/**
 * `-b/--bind` addresses, as gunicorn spells them: `HOST:PORT`, `[IPv6]:PORT`, `HOST` (port 8000),
 * `unix:PATH` and `fd://N` (a listening socket inherited from the parent, e.g. systemd or a supervisor).
 */
import { fstatSync, readFileSync } from 'node:fs';
import net from 'node:net';
import { GrainbowsError } from '../../shared/errors.js';
import type { InheritedListener } from './inherited-listener.js';

export type BindAddress =
  | { kind: 'tcp'; host: string; port: number }
  | { kind: 'unix'; path: string }
  | { kind: 'fd'; fd: number }
  /** A listening socket handed over by a predecessor process (binary upgrade, binary-upgrade.ts). */
  | { kind: 'handle'; inherited: InheritedListener; was: string };

export const DEFAULT_PORT = 8000;

function parsePort(text: string, spec: string): number {
  if (!/^\d{1,5}$/.test(text) || Number(text) > 65535) {
    throw new GrainbowsError('E_BIND', `invalid bind address '${spec}': port must be a number from 0 to 65535`);
  }
  return Number(text);
}

export function parseBind(spec: string): BindAddress {
  const text = spec.trim();
  if (text.startsWith('unix:')) {
    const path = text.slice('unix:'.length);
    if (!path) throw new GrainbowsError('E_BIND', `invalid bind address '${spec}': unix: needs a path`);
    return { kind: 'unix', path };
  }
  if (text.startsWith('fd://')) {
    const fd = text.slice('fd://'.length);
    if (!/^\d+$/.test(fd)) throw new GrainbowsError('E_BIND', `invalid bind address '${spec}': fd:// needs a file descriptor number`);
    return { kind: 'fd', fd: Number(fd) };
  }
  const bracketed = /^\[([^\]]+)\](?::(.*))?$/.exec(text);
  if (bracketed) {
    const host = bracketed[1];
    if (net.isIPv6(host) === false) throw new GrainbowsError('E_BIND', `invalid bind address '${spec}': '${host}' is not an IPv6 address`);
    return { kind: 'tcp', host, port: bracketed[2] === undefined ? DEFAULT_PORT : parsePort(bracketed[2], spec) };
  }
  if (text.split(':').length > 2) {
    throw new GrainbowsError('E_BIND', `invalid bind address '${spec}': write IPv6 addresses in brackets, e.g. [::1]:8000`);
  }
  const [host, port] = text.split(':');
  if (!host || !/^[A-Za-z0-9.\-_]+$/.test(host)) {
    throw new GrainbowsError('E_BIND', `invalid bind address '${spec}': expected HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N`);
  }
  return { kind: 'tcp', host, port: port === undefined ? DEFAULT_PORT : parsePort(port, spec) };
}

/** The descriptor numbers of the `fd://N` binds (a malformed bind is left for the server to report). */
export function inheritedDescriptors(binds: readonly string[]): number[] {
  return binds.flatMap((spec) => {
    try {
      const bind = parseBind(spec);
      return bind.kind === 'fd' ? [bind.fd] : [];
    } catch {
      return [];
    }
  });
}

/** The path a unix socket descriptor is bound to, from /proc/net/unix (Linux); undefined elsewhere or when it has none. */
export function unixPathOf(fd: number): string | undefined {
  try {
    const inode = fstatSync(fd).ino;
    for (const line of readFileSync('/proc/net/unix', 'utf8').split('\n').slice(1)) {
      // Num RefCount Protocol Flags Type St Inode Path
      const fields = line.trim().split(/\s+/);
      if (Number(fields[6]) === inode && fields[7]) return fields[7];
    }
  } catch {
    // not Linux, or the descriptor is gone
  }
  return undefined;
}

/** How a bound listener is shown to people: `http://127.0.0.1:8000`, `unix:/run/app.sock`. */
export function describeListener(server: net.Server, bind: BindAddress, scheme: 'http' | 'https' = 'http'): string {
  const address = server.address();
  if (typeof address === 'string') return `unix:${address}`;
  if (address === null) {
    if (bind.kind === 'unix') return `unix:${bind.path}`;
    // A unix socket opened from a descriptor (systemd's, or one a binary upgrade handed over) tells Node no
    // path: the kernel knows it.
    const fd = (server as unknown as { _handle?: { fd?: number } | null })._handle?.fd;
    const bound = typeof fd === 'number' && fd >= 0 ? unixPathOf(fd) : undefined;
    if (bound) return `unix:${bound}`;
    return bind.kind === 'handle' ? bind.was : `fd://${bind.kind === 'fd' ? bind.fd : '?'}`;
  }
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}
