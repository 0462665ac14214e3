/**
 * Which hand-off strategy this runtime can do. `transfer` needs a way to give an accepted socket to another
 * thread: Node 24 and 26 on Linux move the `net.Socket` itself (Node 20 and 22 throw "Found invalid object in
 * transferList"); on Unix a dup(2)ed descriptor does it on any version (source/handoff/descriptor-copy.ts). We find
 * out by trying once on a loopback connection, not by reading version numbers.
 */
import net from 'node:net';
import { MessageChannel, type MessagePort, type TransferListItem } from 'node:worker_threads';
import { GrainbowsError } from '../../shared/errors.js';
import { descriptorCopier, descriptorOf, type DescriptorCopier } from './descriptor-copy.js';
import type { HandoffStrategy } from '../../shared/settings-values.js';
import type { SocketHandoff } from '../../shared/wire.js';

/**
 * How this runtime moves a socket into an actor: `move` puts the `net.Socket` itself in postMessage's
 * transfer list (Node 24+); `copy` posts a dup(2)ed descriptor for the actor to open (source/handoff/descriptor-copy.ts:
 * Node 20 and 22 on Unix, with koffi installed).
 */
export type TransferMechanism = 'move' | 'copy';

let probed: Promise<TransferMechanism | undefined> | undefined;
/** What the probe found, for postSocket (which runs per connection and cannot wait). */
let found: { mechanism: TransferMechanism; copier?: DescriptorCopier } | undefined;

/** The mechanism, or undefined where sockets can only be relayed. Found out once, on a loopback connection. */
export function transferMechanism(): Promise<TransferMechanism | undefined> {
  probed ??= probeSocketTransfer();
  return probed;
}

export async function canTransferSockets(): Promise<boolean> {
  return (await transferMechanism()) !== undefined;
}

async function probeSocketTransfer(): Promise<TransferMechanism | undefined> {
  const server = net.createServer({ pauseOnConnect: true });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const { port } = server.address() as net.AddressInfo;
  const client = net.connect(port, '127.0.0.1');
  client.on('error', () => {});
  try {
    const accepted = await new Promise<net.Socket>((resolve) => server.once('connection', resolve));
    if (await socketsMove(accepted)) {
      found = { mechanism: 'move' };
      return 'move';
    }
    const copier = await descriptorCopier();
    if (copier && (await descriptorsCopy(copier, accepted, client))) {
      found = { mechanism: 'copy', copier };
      return 'copy';
    }
    return undefined;
  } finally {
    client.destroy();
    server.close();
  }
}

async function socketsMove(accepted: net.Socket): Promise<boolean> {
  const channel = new MessageChannel();
  try {
    channel.port1.postMessage({ socket: accepted }, [accepted as unknown as TransferListItem]);
  } catch {
    channel.port1.close();
    return false; // Node 20 and 22: "Found invalid object in transferList"; the socket is still ours
  }
  const arrived = await new Promise<{ socket: net.Socket }>((resolve) => channel.port2.once('message', resolve));
  arrived.socket.destroy();
  channel.port1.close();
  return true;
}

/** The copy must carry the connection on after the original is closed: a byte the client sends arrives on it. */
async function descriptorsCopy(copier: DescriptorCopier, accepted: net.Socket, client: net.Socket): Promise<boolean> {
  const fd = descriptorOf(accepted);
  if (fd === undefined) return false;
  const copy = copier.dup(fd);
  accepted.destroy();
  if (copy < 0) return false;
  let reopened: net.Socket;
  try {
    reopened = new net.Socket({ fd: copy, readable: true, writable: true });
  } catch {
    copier.close(copy);
    return false;
  }
  try {
    const byte = new Promise<boolean>((resolve) => {
      reopened.once('data', (chunk: Buffer) => resolve(chunk[0] === 0x2a));
      reopened.once('error', () => resolve(false));
      setTimeout(() => resolve(false), 2000).unref();
    });
    client.write('*');
    return await byte;
  } finally {
    reopened.destroy();
  }
}

/** `auto` picks transfer where the runtime can, relay elsewhere; forcing transfer where it cannot is an error. */
export async function chooseHandoff(requested: HandoffStrategy | 'auto'): Promise<HandoffStrategy> {
  if (requested === 'relay') return 'relay';
  const possible = await canTransferSockets();
  if (requested === 'transfer' && !possible) {
    throw new GrainbowsError(
      'E_HANDOFF_UNAVAILABLE',
      `--handoff transfer is not possible on Node ${process.versions.node}: this runtime cannot move a socket to a worker thread, and dup() is unavailable (koffi is not installed or does not load here; on Windows there is none): use relay, or Node 24+`,
    );
  }
  return possible ? 'transfer' : 'relay';
}

/**
 * Gives `socket` to the actor behind `port`, by the mechanism found at start-up. False when it cannot (the
 * runtime refused, no descriptors left, the probe never ran): the socket is still main's, to relay.
 * `message.head` is transferred with it.
 */
export function postSocket(port: MessagePort, message: Omit<SocketHandoff, 'socket' | 'fd'>, socket: net.Socket): boolean {
  if (!found) return false;
  const head = message.head.buffer as ArrayBuffer;
  if (found.mechanism === 'move') {
    try {
      port.postMessage({ ...message, socket }, [socket as unknown as TransferListItem, head]);
      return true;
    } catch {
      return false;
    }
  }
  // Bytes main's stream holds but nobody read would be lost with its descriptor: relay such a socket.
  const fd = socket.readableLength === 0 ? descriptorOf(socket) : undefined;
  const copier = found.copier as DescriptorCopier;
  const copy = fd === undefined ? -1 : copier.dup(fd);
  if (copy < 0) return false;
  try {
    port.postMessage({ ...message, fd: copy }, [head]);
  } catch {
    copier.close(copy);
    return false;
  }
  // Closing ours leaves the connection open on the copy (no FIN, no RST: the socket lives while a descriptor does).
  socket.destroy();
  return true;
}
