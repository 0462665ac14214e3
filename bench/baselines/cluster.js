// Baseline: the bench app on node:cluster with N worker processes sharing one port (what Node users do today).
import cluster from 'node:cluster';
import http from 'node:http';
import app from '../app.js';

const workers = Number(process.argv[3] ?? 2);
if (cluster.isPrimary) {
  const port = Number(process.argv[2]);
  let listening = 0;
  for (let i = 0; i < workers; i++) cluster.fork({ BENCH_PORT: String(port) });
  cluster.on('listening', () => {
    if (++listening === workers) process.stderr.write(`Listening at: http://127.0.0.1:${port} (${process.pid})\n`);
  });
  process.on('SIGTERM', () => {
    for (const worker of Object.values(cluster.workers)) worker.kill();
    process.exit(0);
  });
} else {
  const server = http.createServer({ keepAliveTimeout: 75_000, requestTimeout: 0 }, app);
  server.listen({ host: '127.0.0.1', port: Number(process.env.BENCH_PORT), backlog: 4096 });
}
