/**
 * The listening sockets. They belong to the main thread: it accepts every connection and hands it on.
 * `pauseOnConnect` keeps an accepted socket unread until its actor is chosen (the transfer strategy needs
 * an untouched socket); `allowHalfOpen` lets a client's FIN travel to the actor instead of ending our side.
 */
import { existsSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { describeListener, type BindAddress } from './bind.js';
import { GrainbowsError } from './errors.js';
import { tlsServerOptions, type TlsMaterial } from './tls.js';

export interface Listener {
  bind: BindAddress;
  server: net.Server;
  /** e.g. `http://127.0.0.1:8000`, the real port when 0 was asked for. */
  url: string;
}

function removeStaleUnixSocket(path: string): void {
  if (existsSync(path) && lstatSync(path).isSocket()) unlinkSync(path);
}

function listenOn(server: net.Server, bind: BindAddress, backlog: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (error: NodeJS.ErrnoException) => {
      const where = bind.kind === 'tcp' ? `${bind.host}:${bind.port}` : bind.kind === 'unix' ? `unix:${bind.path}` : `fd://${bind.fd}`;
      reject(new GrainbowsError('E_LISTEN', `cannot listen on ${where}: ${error.code ?? error.message}`, { cause: error }));
    };
    server.once('error', onError);
    const done = () => {
      server.off('error', onError);
      resolve();
    };
    switch (bind.kind) {
      case 'tcp':
        server.listen({ host: bind.host, port: bind.port, backlog }, done);
        break;
      case 'unix':
        removeStaleUnixSocket(bind.path);
        server.listen({ path: bind.path, backlog }, done);
        break;
      case 'fd':
        server.listen({ fd: bind.fd, backlog }, done);
        break;
    }
  });
}

/**
 * With TLS material every listener speaks HTTPS: connections are handed on once the handshake is done
 * (tls.Server drops clients that do not finish it within its handshake timeout).
 */
export async function openListeners(binds: BindAddress[], backlog: number, onConnection: (socket: net.Socket) => void, secure?: TlsMaterial): Promise<Listener[]> {
  const listeners: Listener[] = [];
  try {
    for (const bind of binds) {
      const server = secure
        ? tls.createServer(tlsServerOptions(secure), onConnection)
        : net.createServer({ pauseOnConnect: true, allowHalfOpen: true, noDelay: true }, onConnection);
      await listenOn(server, bind, backlog);
      listeners.push({ bind, server, url: describeListener(server, bind, secure ? 'https' : 'http') });
    }
  } catch (error) {
    await closeListeners(listeners);
    throw error;
  }
  return listeners;
}

/** Certificate rotation: new connections use the new material, open ones keep theirs. */
export function renewCertificates(listeners: Listener[], secure: TlsMaterial): void {
  for (const { server } of listeners) if (server instanceof tls.Server) server.setSecureContext(tlsServerOptions(secure));
}

export async function closeListeners(listeners: Listener[]): Promise<void> {
  await Promise.all(listeners.map(({ server }) => new Promise<void>((resolve) => server.close(() => resolve()))));
}
