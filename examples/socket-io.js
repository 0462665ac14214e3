// socket.io on several actors: a chat page. grainbows/socket.io's adapter carries io.emit to the clients
// of every actor, and --sticky-sessions sends each long-polling request to the actor holding its session.
//   npx grainbows -b 127.0.0.1:8000 -w 2 --sticky-sessions examples/socket-io.js   then open http://127.0.0.1:8000/
import http from 'node:http';
import { Server } from 'socket.io';
import { createAdapter } from 'grainbows/socket.io';

const page = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>socket.io chat</title>
<style>body{font:16px system-ui;margin:2rem;max-width:40rem} #log{border:1px solid #ccc;height:16rem;overflow:auto;padding:.5rem}
#log p{margin:.2rem 0} form{display:flex;gap:.5rem;margin-top:.5rem} input{flex:1}</style></head>
<body>
<h1>socket.io chat</h1>
<p id="status">connecting…</p>
<div id="log" aria-live="polite"></div>
<form id="form"><input id="text" autocomplete="off" placeholder="Say something" aria-label="message"><button>Send</button></form>
<script src="/socket.io/socket.io.js"></script>
<script>
  const socket = io();
  const log = document.getElementById('log');
  socket.on('connect', () => { document.getElementById('status').textContent = 'connected'; });
  socket.on('chat', (text) => {
    const line = document.createElement('p');
    line.textContent = text;
    log.append(line);
  });
  document.getElementById('form').addEventListener('submit', (event) => {
    event.preventDefault();
    const input = document.getElementById('text');
    socket.emit('chat', input.value);
    input.value = '';
  });
</script>
</body>
</html>`;

const server = http.createServer((req, res) => {
  if (req.url === '/') {
    res.setHeader('content-type', 'text/html; charset=utf-8');
    res.end(page);
    return;
  }
  res.statusCode = 404;
  res.end('not found\n');
});

const io = new Server(server, { adapter: createAdapter() });
io.on('connection', (socket) => {
  socket.on('chat', (text) => io.emit('chat', String(text).slice(0, 500)));
});

export default server;
