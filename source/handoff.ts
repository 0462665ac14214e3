/**
 * Which hand-off strategy this runtime can do. `transfer` needs a runtime that can move an accepted
 * `net.Socket` to another thread (Node 24 and 26 on Linux can, 22 cannot; Node 20 throws "Found invalid object in
 * transferList"). We find out by trying once on a loopback connection, not by reading version numbers.
 */
import net from 'node:net';
import { MessageChannel, type TransferListItem } from 'node:worker_threads';
import { GrainbowsError } from './errors.js';
import type { HandoffStrategy } from './actor-link.js';

let probed: Promise<boolean> | undefined;

export function canTransferSockets(): Promise<boolean> {
  probed ??= probeSocketTransfer();
  return probed;
}

async function probeSocketTransfer(): Promise<boolean> {
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
    const channel = new MessageChannel();
    try {
      channel.port1.postMessage({ socket: accepted }, [accepted as unknown as TransferListItem]);
    } catch {
      accepted.destroy();
      return false;
    }
    const arrived = await new Promise<{ socket: net.Socket }>((resolve) => channel.port2.once('message', resolve));
    arrived.socket.destroy();
    channel.port1.close();
    return true;
  } finally {
    client.destroy();
    server.close();
  }
}

/** `auto` picks transfer where the runtime can, relay elsewhere; forcing transfer where it cannot is an error. */
export async function chooseHandoff(requested: HandoffStrategy | 'auto'): Promise<HandoffStrategy> {
  if (requested === 'relay') return 'relay';
  const possible = await canTransferSockets();
  if (requested === 'transfer' && !possible) {
    throw new GrainbowsError(
      'E_HANDOFF_UNAVAILABLE',
      `--handoff transfer is not possible on Node ${process.versions.node}: this runtime cannot move a socket to a worker thread (use relay, or Node 24+)`,
    );
  }
  return possible ? 'transfer' : 'relay';
}
