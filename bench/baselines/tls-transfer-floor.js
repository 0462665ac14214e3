// Baseline: the floor of TLS ended in the actors (Node 26, where a net.Socket is transferable). The main
// thread accepts each connection without reading it and moves the socket into one of two worker threads,
// where a plain node:https server (or node:http2's secure server, `h2`, with HTTP/1.1 by ALPN) runs the
// handshake and the bench app: none of grainbows' code. Argv: port, cert, key, h1|h2.
import http2 from 'node:http2';
import https from 'node:https';
import net from 'node:net';
import { readFileSync } from 'node:fs';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import app from '../app.js';

if (isMainThread) {
  const [, , port, certfile, keyfile, protocol = 'h1'] = process.argv;
  process.title = 'tls-transfer-floor';
  const options = { workerData: { certfile, keyfile, protocol } };
  const workers = [new Worker(new URL(import.meta.url), options), new Worker(new URL(import.meta.url), options)];
  let next = 0;
  const server = net.createServer({ noDelay: true, pauseOnConnect: true }, (socket) => {
    const worker = workers[next++ % workers.length];
    worker.postMessage({ socket }, [socket]);
  });
  server.listen({ host: '127.0.0.1', port: Number(port ?? 0), backlog: 4096 }, () => {
    process.stderr.write(`Listening at: https://127.0.0.1:${server.address().port} (${process.pid})\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
} else {
  const { certfile, keyfile, protocol } = workerData;
  const tls = { cert: readFileSync(certfile), key: readFileSync(keyfile) };
  const server =
    protocol === 'h2'
      ? http2.createSecureServer({ ...tls, allowHTTP1: true }, app)
      : https.createServer({ ...tls, keepAliveTimeout: 75_000, requestTimeout: 0 }, app);
  parentPort.on('message', ({ socket }) => {
    socket.setNoDelay(true);
    server.emit('connection', socket);
    socket.resume();
  });
}
