/**
 * Opens `count` keep-alive connections to a server, sends one GET on each (so each is a served, idle
 * keep-alive connection), then holds them until stdin closes. Prints "held N" once all are open. A child
 * process of bench/memory.ts, so that the client side's memory is not counted with the server's.
 *
 *   node dist/bench/hold.js URL COUNT
 */
import net from 'node:net';

const [url, count] = [new URL(process.argv[2]), Number(process.argv[3])];
const sockets: net.Socket[] = [];
let answered = 0;
let failed = 0;
const BATCH = 200;

for (let i = 0; i < count; i += BATCH) {
  await Promise.all(
    Array.from(
      { length: Math.min(BATCH, count - i) },
      () =>
        new Promise<void>((resolve) => {
          const socket = net.connect(Number(url.port), url.hostname);
          socket.on('error', () => {
            failed++;
            resolve();
          });
          socket.once('data', () => {
            answered++;
            resolve();
          });
          socket.write(`GET / HTTP/1.1\r\nHost: ${url.host}\r\n\r\n`);
          sockets.push(socket);
        }),
    ),
  );
}
process.stdout.write(`held ${answered} failed ${failed}\n`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
