// Baseline: the bench app on one plain node:http server (one thread), tuned like grainbows (keep-alive 75 s,
// backlog 4096), printing its address the way grainbows does.
import http from 'node:http';
import app from '../app.js';

const server = http.createServer({ keepAliveTimeout: 75_000, requestTimeout: 0 }, app);
server.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0), backlog: 4096 }, () => {
  process.stderr.write(`Listening at: http://127.0.0.1:${server.address().port} (${process.pid})\n`);
});
process.on('SIGTERM', () => process.exit(0));
