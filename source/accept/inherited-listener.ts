/**
 * A listening socket a binary upgrade hands over from the old process (source/lifecycle/binary-upgrade.ts
 * receives it): it keeps the connections that arrive before this process's actors are up.
 */
import type { Server, Socket } from 'node:net';

/** net.Server options Node reads at each accept, settable after the server exists. */
interface AcceptOptions {
  pauseOnConnect: boolean;
  allowHalfOpen: boolean;
}

/**
 * A listening socket received from the old process. Node's IPC makes it a net.Server that is listening
 * already, with nobody taking its connections: from the moment it arrives, the kernel hands it connections
 * that would otherwise sit accepted and unanswered. So they are kept, unread, from the first one, and
 * given to the dispatcher once the actors are up (`takeOver`).
 */
export class InheritedListener {
  private early: Socket[] = [];
  private target: ((socket: Socket) => void) | undefined;

  constructor(
    readonly server: Server,
    /** With TLS ended in main its layer reads the bytes here; otherwise they stay unread until an actor has the socket. */
    readsInMain: boolean,
  ) {
    const options = server as unknown as AcceptOptions;
    options.pauseOnConnect = !readsInMain;
    options.allowHalfOpen = true;
    server.on('connection', (socket: Socket) => {
      if (this.target) this.target(socket);
      else this.early.push(socket);
    });
  }

  /** From now on connections go to `onConnection`, those that arrived meanwhile first. */
  takeOver(onConnection: (socket: Socket) => void): void {
    this.target = onConnection;
    for (const socket of this.early.splice(0)) if (!socket.destroyed) onConnection(socket);
  }
}
