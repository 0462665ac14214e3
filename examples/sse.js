// Server-sent events: one stream per client, held open for as long as the client stays (minutes, hours),
// with an event every second and a comment every 15 s so proxies do not take the stream for idle.
//   npx grainbows -b 127.0.0.1:8000 examples/sse.js   then: curl -N http://127.0.0.1:8000/events
// ?interval=MS changes the event period.
export default function sse(req, res) {
  const url = new URL(req.url, 'http://localhost');
  if (url.pathname !== '/events') {
    res.writeHead(200, { 'content-type': 'text/plain' });
    return res.end('curl -N http://HOST:PORT/events\n');
  }
  const interval = Math.max(10, Number(url.searchParams.get('interval') ?? 1000));
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store', connection: 'keep-alive' });
  let id = Number(req.headers['last-event-id'] ?? 0);
  const tick = setInterval(() => {
    id++;
    res.write(`id: ${id}\nevent: tick\ndata: ${JSON.stringify({ id, at: new Date().toISOString() })}\n\n`);
  }, interval);
  const heartbeat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
  res.on('close', () => {
    clearInterval(tick);
    clearInterval(heartbeat);
  });
}
