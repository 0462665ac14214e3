// Baseline: the bench app over HTTPS on node:cluster with N worker processes (N = 1: one process, no cluster),
// each ending TLS itself: what Node users run without a proxy in front. Argv: port, workers, cert, key, and
// `h2` for node:http2's secure server (HTTP/2 and, by ALPN, HTTP/1.1) instead of node:https.
import cluster from 'node:cluster';
import http2 from 'node:http2';
import https from 'node:https';
import { readFileSync } from 'node:fs';
import app from '../app.js';

const [, , port, count = '2', certfile, keyfile, protocol = 'h1'] = process.argv;
const workers = Number(count);
const announce = () => process.stderr.write(`Listening at: https://127.0.0.1:${port} (${process.pid})\n`);
const tls = { cert: readFileSync(certfile), key: readFileSync(keyfile) };
const createServer = () =>
  protocol === 'h2'
    ? http2.createSecureServer({ ...tls, allowHTTP1: true }, app)
    : https.createServer({ ...tls, keepAliveTimeout: 75_000, requestTimeout: 0 }, app);
const listen = (onListening) => createServer().listen({ host: '127.0.0.1', port: Number(port), backlog: 4096 }, onListening);

if (workers === 1) listen(announce);
else if (cluster.isPrimary) {
  let listening = 0;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('listening', () => {
    if (++listening === workers) announce();
  });
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers)) worker.kill();
    process.exit(0);
  });
} else listen();
process.on('SIGTERM', () => process.exit(0));
