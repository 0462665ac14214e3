/**
 * `-b/--bind` addresses, as gunicorn spells them: `HOST:PORT`, `[IPv6]:PORT`, `HOST` (port 8000),
 * `unix:PATH` and `fd://N` (a listening socket inherited from the parent, e.g. systemd or a supervisor).
 */
import net from 'node:net';
import { GrainbowsError } from '../../shared/errors.js';
import type { InheritedListener } from '../lifecycle/binary-upgrade.js';

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

/** How a bound listener is shown to people: `http://127.0.0.1:8000`, `unix:/run/app.sock`. */
export function describeListener(server: net.Server, bind: BindAddress, scheme: 'http' | 'https' = 'http'): string {
  const address = server.address();
  if (typeof address === 'string') return `unix:${address}`;
  if (address === null) return bind.kind === 'unix' ? `unix:${bind.path}` : bind.kind === 'handle' ? bind.was : `fd://${bind.kind === 'fd' ? bind.fd : '?'}`;
  const host = address.family === 'IPv6' ? `[${address.address}]` : address.address;
  return `${scheme}://${host}:${address.port}`;
}
