/**
 * The listening sockets. They belong to the main thread: it accepts every connection and hands it on.
 * `pauseOnConnect` keeps an accepted socket unread until its actor is chosen (the transfer strategy needs
 * an untouched socket); `allowHalfOpen` lets a client's FIN travel to the actor instead of ending our side.
 */
import { chmodSync, existsSync, linkSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import type tls from 'node:tls';
import { describeListener, type BindAddress } from './bind.js';
import { GrainbowsError } from '../../shared/errors.js';
import { guardHandshakes, tlsServerOptions, type TlsServing } from '../../shared/tls-options.js';

export interface Listener {
  bind: BindAddress;
  /** The listening socket's server. */
  server: net.Server;
  /** With TLS ended in main: the TLS server its connections pass (the listening server itself, or one fed by an inherited socket). */
  tlsFront?: tls.Server;
  /** With TLS ended in main: the raw connections accepted and not yet closed (the handshake, the gate, the relay). */
  tlsConnections?: Set<net.Socket>;
  /** e.g. `http://127.0.0.1:8000`, the real port when 0 was asked for. */
  url: string;
}

function removeStaleUnixSocket(path: string): void {
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
}

/**
 * Windows only: libuv keeps up to 32 AcceptEx calls posted on a listening socket, and a connection the kernel
 * completed into one of them is reset when the socket is closed before the event loop took it: what a
 * binary upgrade does to the old process's listeners. With one pending accept at a time (libuv's
 * single-accept mode, which Node's cluster also uses on Windows, and in which sockets received over IPC
 * already are) the close can catch at most one. Measured under wine, a new connection per request across
 * the upgrade: 13 resets in 5 runs of ~1,100 requests before, 1 after. grainbows' main thread is the only
 * acceptor, so the mode's cost (a slower accept rate in a connection storm) is paid once, not per process.
 */
function singleAcceptOnWindows(server: net.Server): void {
  if (process.platform !== 'win32') return;
  const handle = (server as net.Server & { _handle?: { setSimultaneousAccepts?: (enable: boolean) => void } })._handle;
  handle?.setSimultaneousAccepts?.(false);
}

/**
 * A unix socket's mode is 0o777 without the `--umask` bits, as gunicorn makes it: with the default umask 0
 * any local user can connect, the front proxy (nginx as www-data) among them. The process's own umask
 * (often 022) would leave others without write permission, which a socket needs to be connected to.
 */
function unixSocketMode(umask: number): number {
  return 0o777 & ~umask;
}

function listenOn(server: net.Server, bind: BindAddress, backlog: number, umask: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const where =
        bind.kind === 'tcp' ? `${bind.host}:${bind.port}` : bind.kind === 'unix' ? `unix:${bind.path}` : bind.kind === 'fd' ? `fd://${bind.fd}` : bind.was;
      reject(new GrainbowsError('E_LISTEN', `cannot listen on ${where}: ${error.code ?? error.message}`, { cause: error }));
    };
    server.once('error', onError);
    const done = () => {
      singleAcceptOnWindows(server);
      server.off('error', onError);
      resolve();
    };
    switch (bind.kind) {
      case 'tcp':
        server.listen({ host: bind.host, port: bind.port, backlog }, done);
        break;
      case 'unix':
        removeStaleUnixSocket(bind.path);
        server.listen({ path: bind.path, backlog }, () => {
          if (process.platform !== 'win32') chmodSync(bind.path, unixSocketMode(umask));
          done();
        });
        break;
      case 'fd':
        server.listen({ fd: bind.fd, backlog }, done);
        break;
      case 'handle':
        done(); // listening already: openListeners takes its connections over
        break;
    }
  });
}

/** How the listeners speak: `https` with TLS ended in the actors still listens on plain TCP, unread. */
export interface ListenerSecurity {
  scheme: 'http' | 'https';
  /** TLS ended in main: each listener is a TLS server and hands on connections once their handshake is done. */
  tlsInMain?: TlsServing;
}

/**
 * A TLS server in front of `onConnection`, which keeps the raw connections it accepted until they close.
 * node:tls loads only where main ends TLS (docs/performance.md, Memory).
 */
async function createTlsFront(tlsInMain: NonNullable<ListenerSecurity['tlsInMain']>, onConnection: (socket: net.Socket) => void) {
  const { createServer } = await import('node:tls');
  const front = createServer(tlsServerOptions(tlsInMain), onConnection);
  guardHandshakes(front);
  const connections = new Set<net.Socket>();
  front.on('connection', (raw: net.Socket) => {
    connections.add(raw);
    raw.once('close', () => connections.delete(raw));
  });
  return { front, connections };
}

export async function openListeners(
  binds: BindAddress[],
  backlog: number,
  onConnection: (socket: net.Socket) => void,
  { scheme, tlsInMain }: ListenerSecurity = { scheme: 'http' },
  /** `--umask`: unix sockets get mode 0o777 without these bits. */
  umask = 0,
): Promise<Listener[]> {
  const listeners: Listener[] = [];
  try {
    for (const bind of binds) {
      const tlsFront = tlsInMain ? await createTlsFront(tlsInMain, onConnection) : undefined;
      if (bind.kind === 'handle') {
        // A socket inherited in a binary upgrade: it is listening already, with connections kept for us.
        const acceptor = bind.inherited.server;
        bind.inherited.takeOver(tlsFront ? (socket) => tlsFront.front.emit('connection', socket) : onConnection);
        listeners.push({
          bind,
          server: acceptor,
          tlsFront: tlsFront?.front,
          tlsConnections: tlsFront?.connections,
          url: describeListener(acceptor, bind, scheme),
        });
        continue;
      }
      const server = tlsFront ? tlsFront.front : net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, onConnection);
      await listenOn(server, bind, backlog, umask);
      listeners.push({ bind, server, tlsFront: tlsFront?.front, tlsConnections: tlsFront?.connections, url: describeListener(server, bind, scheme) });
    }
  } catch (error) {
    await closeListeners(listeners);
    throw error;
  }
  return listeners;
}

/** Certificate rotation with TLS in main: new connections use the new material, open ones keep theirs. */
export function renewCertificates(listeners: Listener[], serving: TlsServing): void {
  for (const { tlsFront } of listeners) tlsFront?.setSecureContext(tlsServerOptions(serving));
}

/**
 * Closes what main still holds of TLS connections once the actors are gone: a handshake under way, or one
 * whose client left during it. A listener's close waits for every connection it accepted.
 */
export function dropTlsConnections(listeners: Listener[]): void {
  for (const { tlsConnections } of listeners) for (const raw of tlsConnections ?? []) raw.destroy();
}

/**
 * Stops accepting. `handingOver`: a successor process listens on the same sockets (binary upgrade), so a
 * unix socket keeps its path: Node unlinks the path when the server closes, so a second link to the socket
 * survives the close and takes the name back at once (both happen in this one synchronous step).
 */
export async function closeListeners(
  listeners: Listener[],
  { handingOver = false, warn = (_message: string): void => {} }: { handingOver?: boolean; warn?: (message: string) => void } = {},
): Promise<void> {
  await Promise.all(
    listeners.map(({ server }) => {
      const closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
      const address = server.address();
      if (handingOver && typeof address === 'string' && existsSync(address)) keepPathWhileClosing(server, address, warn);
      else server.close();
      return closed;
    }),
  );
}

/**
 * Closes a unix socket's server without losing its path, through a second hard link. The link can be
 * refused: fs.protected_hardlinks forbids linking a file another user owns (a socket bound as root by a
 * server that then dropped privileges), and the directory may not be writable. The server still closes
 * (a stop is never abandoned half-way), and the warning says the successor lost the path.
 */
function keepPathWhileClosing(server: net.Server, address: string, warn: (message: string) => void): void {
  const spare = `${address}.${process.pid}.handover`;
  try {
    linkSync(address, spare);
  } catch (error) {
    warn(
      `cannot keep ${address} for the new process (${(error as NodeJS.ErrnoException).code ?? String(error)}): new clients cannot connect to it by its path`,
    );
    server.close();
    return;
  }
  server.close();
  renameSync(spare, address);
}
