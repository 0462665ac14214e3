// A chat page whose browser client talks over a WebSocket; every message reaches every client, on every
// actor, not only the sender's.
//   npx grainbows -b 127.0.0.1:8000 -w 2 examples/websocket.js   then open http://127.0.0.1:8000/
//
// Each actor is a thread with its own WebSocket clients. A worker_threads BroadcastChannel joins the
// actors of one process: a message is sent to the local clients directly and posted on the channel for
// the other actors to send to theirs.
import { BroadcastChannel, threadId } from 'node:worker_threads';
import { WebSocketServer } from 'ws';

const page = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>grainbows chat</title>
<style>body{font:16px system-ui;margin:2rem;max-width:40rem} #log{border:1px solid #ccc;height:16rem;overflow:auto;padding:.5rem}
#log p{margin:.2rem 0} form{display:flex;gap:.5rem;margin-top:.5rem} input{flex:1}</style></head>
<body>
<h1>grainbows chat</h1>
<p id="status">connecting…</p>
<div id="log" aria-live="polite"></div>
<form id="form"><input id="text" autocomplete="off" placeholder="Say something" aria-label="message"><button>Send</button></form>
<script>
  const log = document.getElementById('log');
  const status = document.getElementById('status');
  const socket = new WebSocket(location.origin.replace(/^http/, 'ws') + '/chat');
  socket.onopen = () => { status.textContent = 'connected'; };
  socket.onclose = () => { status.textContent = 'disconnected'; };
  socket.onmessage = (event) => {
    const { text, actor } = JSON.parse(event.data);
    const line = document.createElement('p');
    line.textContent = text;
    line.title = 'relayed by actor thread ' + actor;
    log.append(line);
    log.scrollTop = log.scrollHeight;
  };
  document.getElementById('form').onsubmit = (event) => {
    event.preventDefault();
    const input = document.getElementById('text');
    if (input.value) socket.send(input.value);
    input.value = '';
  };
</script>
</body>
</html>`;

export default function chatPage(req, res) {
  if (req.url === '/' || req.url === '/index.html') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(page);
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
}

// grainbows calls onServer with each actor's http.Server: attach ws as you would to any Node server.
export function onServer(server) {
  const wss = new WebSocketServer({ server, path: '/chat' });
  const otherActors = new BroadcastChannel('grainbows-example-chat');
  const sendLocally = (message) => {
    for (const client of wss.clients) if (client.readyState === client.OPEN) client.send(message);
  };
  otherActors.onmessage = (event) => sendLocally(event.data);
  wss.on('connection', (ws) => {
    // ws emits a client's protocol errors (an invalid frame) on the socket, as its README says: without a
    // listener, one client's bad frame would end the actor and every connection on it.
    ws.on('error', (error) => console.error(`websocket: ${error.message}`));
    ws.on('message', (data) => {
      const message = JSON.stringify({ text: String(data).slice(0, 1000), actor: threadId });
      sendLocally(message);
      otherActors.postMessage(message);
    });
  });
}
