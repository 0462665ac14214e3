// Baseline: the floors of the relay hand-off. The main thread accepts and keeps every socket, as grainbows'
// relay does, and relays its bytes to two worker threads the same way (one msgpack batch per thread per
// event-loop turn, transferred, never copied by postMessage). Then, by the second argument:
// - `canned` (default): the worker answers every request head it sees with the bench app's hello-world
//   response, byte for byte, without an HTTP parser, an app or a stream: the transport alone. Only for
//   `GET /` hello world: it counts heads, it does not understand them.
// - `http`: the worker runs a plain node:http server with the bench app over a bare Duplex per connection
//   (no coroutines, no credit window, no slots, no rules: none of grainbows' actor code). What the
//   relay costs with Node's HTTP in the worker and nothing of ours; grainbows can only be slower.
import http from 'node:http';
import net from 'node:net';
import { Duplex } from 'node:stream';
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { Packr, RESET_BUFFER_MODE, Unpackr } from 'msgpackr';
import app from '../app.js';

const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false });

/** `[id, bytes, id, bytes, ...]` for one port, posted once per turn (shared/wire.ts does the same). */
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
  const mode = process.argv[3] ?? 'canned';
  const workers = [0, 1].map(() => new Worker(new URL(import.meta.url), { workerData: { mode } }));
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
    socket.on('close', () => {
      sockets.delete(id);
      batcher.push(id, new Uint8Array(0)); // an empty frame: the connection is gone
    });
  });
  server.listen({ host: '127.0.0.1', port: Number(process.argv[2] ?? 0), backlog: 4096 }, () => {
    process.stderr.write(`Listening at: http://127.0.0.1:${server.address().port} (${process.pid})\n`);
  });
  process.on('SIGTERM', () => process.exit(0));
} else if (workerData.mode === 'http') {
  const batcher = new Batcher(parentPort);
  const server = http.createServer({ keepAliveTimeout: 75_000, requestTimeout: 0 }, app);
  /** One connection as node:http sees it: bytes from main pushed in, bytes written framed back to main. */
  class FrameSocket extends Duplex {
    constructor(id) {
      super();
      this.id = id;
    }
    _read() {}
    _write(chunk, _encoding, callback) {
      batcher.push(this.id, chunk);
      callback();
    }
    _writev(chunks, callback) {
      batcher.push(this.id, chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map(({ chunk }) => chunk)));
      callback();
    }
  }
  const sockets = new Map();
  parentPort.on('message', (batch) =>
    eachFrame(batch, (id, bytes) => {
      let socket = sockets.get(id);
      if (bytes.byteLength === 0) {
        sockets.delete(id);
        socket?.destroy();
        return;
      }
      if (!socket) {
        socket = new FrameSocket(id);
        sockets.set(id, socket);
        server.emit('connection', socket);
      }
      socket.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    }),
  );
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
      if (bytes.byteLength === 0) return;
      const chunk = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      for (let at = chunk.indexOf('\r\n\r\n'); at !== -1; at = chunk.indexOf('\r\n\r\n', at + 4)) batcher.push(id, hello());
    }),
  );
}
