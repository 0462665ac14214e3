// Baseline: the floor of the relay hand-off. The main thread accepts and keeps every socket, as grainbows'
// relay does, and relays its bytes to two worker threads the same way (one msgpack batch per thread per
// event-loop turn, transferred, never copied by postMessage); the worker answers every request head it
// sees with the bench app's hello-world response, byte for byte, without an HTTP parser, an app or a
// stream. What grainbows' relay costs beyond this is its actors' HTTP path, not the thread crossing.
// Only for `GET /` hello world: it counts heads, it does not understand them.
import net from 'node:net';
import { Worker, isMainThread, parentPort } from 'node:worker_threads';
import { Packr, RESET_BUFFER_MODE, Unpackr } from 'msgpackr';

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false });

/** `[id, bytes, id, bytes, ...]` for one port, posted once per turn (source/wire.ts does the same). */
class Batcher {
  frames = [];
  scheduled = false;
  constructor(port) {
    this.port = port;
  }
  push(id, bytes) {
    this.frames.push(id, bytes);
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(this.flush);
    }
  }
  flush = () => {
    this.scheduled = false;
    const packed = packr.pack(this.frames, RESET_BUFFER_MODE);
    this.frames = [];
    const owned = new Uint8Array(packed.length);
    owned.set(packed);
    this.port.postMessage(owned.buffer, [owned.buffer]);
  };
}

function eachFrame(batch, handle) {
  const frames = unpackr.unpack(new Uint8Array(batch));
  for (let i = 0; i < frames.length; i += 2) handle(frames[i], frames[i + 1]);
}

if (isMainThread) {
  // Threads created after this inherit the name, so the bench can tell them from V8's helper threads.
  process.title = 'relay-floor';
  const workers = [new Worker(new URL(import.meta.url)), new Worker(new URL(import.meta.url))];
  const batchers = workers.map((worker) => new Batcher(worker));
  const sockets = new Map();
  let nextId = 0;
  for (const worker of workers) {
    worker.on('message', (batch) => eachFrame(batch, (id, bytes) => sockets.get(id)?.write(bytes)));
  }
  const server = net.createServer({ noDelay: true }, (socket) => {
    const id = ++nextId;
    const batcher = batchers[id % batchers.length];
    sockets.set(id, socket);
    socket.on('data', (chunk) => batcher.push(id, chunk));
    socket.on('error', () => {});
    socket.on('close', () => sockets.delete(id));
  });
  server.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0), backlog: 4096 }, () => {
    process.stderr.write(`Listening at: http://127.0.0.1:${server.address().port} (${process.pid})\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
} else {
  const batcher = new Batcher(parentPort);
  const body = 'Hello, World!';
  let response = Buffer.alloc(0);
  let dateSecond = -1;
  // The response node:http sends for the bench app's `/`, Date header included (refreshed each second).
  const hello = () => {
    const second = Math.floor(Date.now() / 1000);
    if (second !== dateSecond) {
      dateSecond = second;
      response = Buffer.from(
        `HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: ${body.length}\r\nDate: ${new Date().toUTCString()}\r\nConnection: keep-alive\r\nKeep-Alive: timeout=75\r\n\r\n${body}`,
      );
    }
    return response;
  };
  parentPort.on('message', (batch) =>
    eachFrame(batch, (id, bytes) => {
      const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let at = chunk.indexOf('\r\n\r\n'); at !== -1; at = chunk.indexOf('\r\n\r\n', at + 4)) batcher.push(id, hello());
    }),
  );
}
