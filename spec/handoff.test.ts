/**
 * How connections reach actors on this runtime (source/handoff/strategy.ts): the transfer mechanism found at
 * start-up, and that no hand-off leaves a descriptor behind or lets a child process inherit one. With the copy mechanism (Node 20 and 22) main
 * dup(2)s each socket for its actor and must close its own; the actor must close the copy.
 */
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import { transferMechanism } from '../source/handoff/strategy.js';
import { fixture, strategies, withServer } from './helpers/servers.js';
import { until } from './helpers/wait.js';

const onLinux = process.platform === 'linux';
const major = Number(process.versions.node.split('.')[0]);
/**
 * Descriptors this process holds for the server's side of TCP connections to `port` (the listening socket
 * excluded): sockets from /proc/self/fd whose inode /proc/net/tcp lists with that local port. Counting
 * only these, not every descriptor, keeps the count free of whatever else the test process opens or closes.
 */
function serverSideDescriptors(port: number): number {
  const inodes = new Set<string>();
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  for (const line of readFileSync('/proc/net/tcp', 'utf8').split('\n').slice(1)) {
    const fields = line.trim().split(/\s+/);
    // local_address is IP:PORT in hex; st 0A is LISTEN; the inode is the tenth field.
    if (fields.length > 9 && fields[1].endsWith(`:${hexPort}`) && fields[3] !== '0A') inodes.add(fields[9]);
  }
  let count = 0;
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      const inode = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/self/fd/${fd}`))?.[1];
      if (inode && inodes.has(inode)) count++;
    } catch {
      // closed since it was listed
    }
  }
  return count;
}

describe('transfer mechanism', () => {
  it('moves sockets on Node 24+ and copies descriptors before, on Linux', { skip: !onLinux && 'Linux only' }, async () => {
    const mechanism = await transferMechanism();
    // Node 22 cannot move a socket (docs/design.md); 24 and 26 can. koffi is installed here, so copying works.
    assert.equal(mechanism, major >= 24 ? 'move' : 'copy');
  });
});

for (const strategy of await strategies()) {
  describe(`descriptors (${strategy})`, { skip: !onLinux && '/proc/self/fd is Linux only' }, () => {
    it('holds one descriptor per open connection, and none once they close', () =>
      withServer({ app: fixture('identify.js'), handoff: strategy, workers: 1 }, async ({ port }) => {
        const CONNECTIONS = 40;
        const connect = async () => {
          const socket = net.connect(port, '127.0.0.1');
          const answered = new Promise<void>((resolve) => socket.once('data', () => resolve()));
          socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
          await answered;
          return socket;
        };
        const clients: net.Socket[] = [];
        for (let i = 0; i < CONNECTIONS; i++) clients.push(await connect());
        // One descriptor for the server's side of each connection, wherever in this process it lives.
        // A main that kept its own descriptor after copying one for the actor would hold two.
        await until(() => serverSideDescriptors(port) === CONNECTIONS, 'one descriptor per connection', 3000, 20).catch(() => {});
        assert.equal(serverSideDescriptors(port), CONNECTIONS, `descriptors for ${CONNECTIONS} open connections`);
        for (const socket of clients) socket.destroy();
        await until(() => serverSideDescriptors(port) === 0, 'every descriptor closed', 5000, 20).catch(() => {});
        assert.equal(serverSideDescriptors(port), 0, 'descriptors left after every client closed');
      }));

    it('gives no connection to a process the app starts: every descriptor is close-on-exec', () =>
      withServer({ app: fixture('child-descriptors.js'), handoff: strategy, workers: 1 }, async ({ port, url }) => {
        // Connections held open while the app starts its child, as in the issue (`sleep 15` from an app).
        const held: net.Socket[] = [];
        for (let i = 0; i < 5; i++) {
          const socket = net.connect(port, '127.0.0.1');
          await new Promise<void>((resolve) => {
            socket.once('data', () => resolve());
            socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n');
          });
          held.push(socket);
        }
        try {
          const { sockets } = (await (await fetch(`${url}/`)).json()) as { sockets: string[] };
          assert.deepEqual(sockets, [], 'sockets the child inherited');
        } finally {
          for (const socket of held) socket.destroy();
        }
      }));
  });
}
