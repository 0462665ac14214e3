// Baseline: the floor of the transfer hand-off. The main thread accepts each connection without reading it
// and moves the socket into one of two worker threads (Node 26: a net.Socket is transferable), where a plain
// node:http server runs the bench app. No deferred hand-off, no slots, no guard: what grainbows' transfer
// costs beyond this is its own layers; what this costs beyond node:cluster is threads instead of processes.
import http from 'node:http';
import net from 'node:net';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import app from '../app.js';

if (isMainThread) {
  process.title = 'transfer-floor';
  const workers = [new Worker(new URL(import.meta.url)), new Worker(new URL(import.meta.url))];
  let next = 0;
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
    const worker = workers[next++ % workers.length];
    worker.postMessage({ socket }, [socket]);
  });
  server.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0), backlog: 4096 }, () => {
    process.stderr.write(`Listening at: http://127.0.0.1:${server.address().port} (${process.pid})\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
} else {
  const server = http.createServer({ keepAliveTimeout: 75_000, requestTimeout: 0 }, app);
  parentPort.on('message', ({ socket }) => {
    socket.setNoDelay(true);
    server.emit('connection', socket);
    socket.resume();
  });
}
