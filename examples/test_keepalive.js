// Keep-alive, from grainbows 0.1.3's example of the same name: every response tells which connection it
// came on and how many requests that connection has carried, after an optional sleep (?sleep=MS), so a
// client can see one connection reused across slow requests.
//   npx grainbows -b 127.0.0.1:8000 examples/test_keepalive.js
//   curl -s http://127.0.0.1:8000/?sleep=500 http://127.0.0.1:8000/ http://127.0.0.1:8000/
const served = new WeakMap();

export default function keepalive(req, res) {
  const sleep = Number(new URL(req.url, 'http://localhost').searchParams.get('sleep') ?? 0);
  const count = (served.get(req.socket) ?? 0) + 1;
  served.set(req.socket, count);
  setTimeout(() => {
    const body = JSON.stringify({ connection: `${req.socket.remoteAddress}:${req.socket.remotePort}`, requestsOnConnection: count });
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) });
    res.end(body);
  }, sleep);
}
