// A page with a live progress bar while a large upload streams in: the app reads the request body as it
// arrives (the client is still sending) and reports progress on a server-sent-events stream.
//   npx grainbows -b 127.0.0.1:8000 -w 2 examples/upload-progress.js   then open http://127.0.0.1:8000/
//
// The upload and its progress stream may land on different actors (threads), so progress travels on a
// worker_threads BroadcastChannel that joins the actors of the process. On localhost an upload is over in
// a blink, so the app reads at most RATE bytes a second to make the bar visible (set ?rate=0 to lift it).
import { BroadcastChannel } from 'node:worker_threads';

const RATE = 16 * 1024 * 1024;
const progress = new BroadcastChannel('grainbows-example-upload-progress');
const watchers = new Map(); // upload id -> Set of SSE responses on this actor

progress.onmessage = ({ data }) => deliver(data);

function deliver({ id, received, done }) {
  for (const res of watchers.get(id) ?? []) res.write(`data: ${JSON.stringify({ received, done })}\n\n`);
}

function publish(update) {
  deliver(update);
  progress.postMessage(update);
}

const page = `<!doctype html>
<html lang="en">
<head><meta charset="utf-8"><title>grainbows upload progress</title>
<style>body{font:16px system-ui;margin:2rem;max-width:40rem} progress{width:100%;height:1.5rem}</style></head>
<body>
<h1>Upload progress</h1>
<p><input type="file" id="file" aria-label="file to upload"> or <button id="generate">upload 16 MiB of test data</button></p>
<progress id="bar" value="0" max="1"></progress>
<p id="status">idle</p>
<script>
  const bar = document.getElementById('bar');
  const status = document.getElementById('status');
  window.progressLog = [];
  function upload(blob) {
    const id = Math.random().toString(36).slice(2);
    bar.max = blob.size;
    bar.value = 0;
    status.textContent = 'uploading…';
    const events = new EventSource('/progress?id=' + id);
    events.onmessage = (event) => {
      const { received, done } = JSON.parse(event.data);
      window.progressLog.push(received);
      bar.value = received;
      status.textContent = done ? 'done: ' + received + ' bytes received' : received + ' of ' + blob.size + ' bytes received';
      if (done) events.close();
    };
    // Start the upload once the progress stream is open, so no update is missed.
    events.onopen = () => fetch('/upload?id=' + id, { method: 'POST', body: blob });
  }
  document.getElementById('file').onchange = (event) => upload(event.target.files[0]);
  document.getElementById('generate').onclick = () => upload(new Blob([new Uint8Array(16 * 1024 * 1024).fill(97)]));
</script>
</body>
</html>`;

export default function uploadProgress(req, res) {
  const url = new URL(req.url, 'http://localhost');
  const id = url.searchParams.get('id') ?? '';
  if (url.pathname === '/') {
    res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
    return res.end(page);
  }
  if (url.pathname === '/progress') {
    res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-store' });
    res.write(': watching\n\n');
    if (!watchers.has(id)) watchers.set(id, new Set());
    watchers.get(id).add(res);
    res.on('close', () => watchers.get(id)?.delete(res));
    return;
  }
  if (url.pathname === '/upload' && req.method === 'POST') {
    const rate = Number(url.searchParams.get('rate') ?? RATE);
    const started = Date.now();
    let received = 0;
    let lastReport = 0;
    req.on('data', (chunk) => {
      received += chunk.length;
      if (received - lastReport >= 256 * 1024) {
        lastReport = received;
        publish({ id, received, done: false });
      }
      // Throttle: pause reading until the clock catches up with RATE (backpressure reaches the client).
      const due = rate > 0 ? (received / rate) * 1000 - (Date.now() - started) : 0;
      if (due > 5) {
        req.pause();
        setTimeout(() => req.resume(), due);
      }
    });
    req.on('end', () => {
      publish({ id, received, done: true });
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ received }));
    });
    return;
  }
  res.writeHead(404, { 'content-type': 'text/plain' });
  res.end('not found\n');
}
