/**
 * Hostile bytes for the parser and fuzzing suites: a seeded generator (a failing run replays from its seed),
 * a mutator of valid requests (flip, insert CR/LF/NUL/space/colon/digits, delete, duplicate a slice,
 * truncate, grow a number) and a raw sender that trickles them and half-closes.
 */
import net from 'node:net';

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
export function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INSERTS = [
  '\r',
  '\n',
  '\r\n',
  '\0',
  ' ',
  ':',
  '\t',
  '0',
  'f',
  ';',
  ',',
  '-',
  'chunked',
  'Content-Length: 5\r\n',
  'Transfer-Encoding: chunked\r\n',
  '\x7f',
  '\xff',
];

export function mutate(input: Buffer, next: () => number): Buffer {
  let bytes = Buffer.from(input);
  const pick = (n: number) => Math.floor(next() * n);
  const rounds = 1 + pick(4);
  for (let r = 0; r < rounds && bytes.length > 0; r++) {
    const at = pick(bytes.length);
    switch (pick(6)) {
      case 0: // flip a byte
        bytes[at] = pick(256);
        break;
      case 1: {
        const insert = Buffer.from(INSERTS[pick(INSERTS.length)], 'latin1');
        bytes = Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at)]);
        break;
      }
      case 2: // delete a run
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + 1 + pick(8)))]);
        break;
      case 3: {
        const end = Math.min(bytes.length, at + 1 + pick(40));
        bytes = Buffer.concat([bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end)]);
        break;
      }
      case 4: // truncate
        bytes = bytes.subarray(0, at);
        break;
      default: // grow a number
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from('9'.repeat(1 + pick(30))), bytes.subarray(at)]);
    }
  }
  return bytes;
}

export type Ending = 'response' | 'closed' | 'hung';

/**
 * Sends the bytes (in 1–3 writes, as `next` picks), half-closes, and reports how the connection ended:
 * with a response, closed without one, or neither within `deadlineMs`.
 */
export function sendAndHalfClose(port: number, bytes: Buffer, next: () => number, deadlineMs = 5000): Promise<Ending> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let settled = false;
    const finish = (ending: Ending) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ending);
    };
    const timer = setTimeout(() => finish(received.startsWith('HTTP/1.') ? 'response' : 'hung'), deadlineMs);
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
    });
    socket.on('close', () => finish(received.startsWith('HTTP/1.') ? 'response' : 'closed'));
    socket.on('error', () => {});
    socket.on('connect', async () => {
      const parts = 1 + Math.floor(next() * 3);
      const size = Math.ceil(bytes.length / parts);
      for (let i = 0; i < bytes.length; i += size) {
        socket.write(bytes.subarray(i, i + size));
        await new Promise((r) => setTimeout(r, 1));
      }
      // Half-close: a request cut short must still end (Node answers or closes at the client's FIN).
      socket.end();
    });
  });
}
