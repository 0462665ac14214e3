/**
 * A raw HTTP/2 client over TLS for abuse tests: it writes frames as an attacker would (RFC 9113 §4, §6),
 * which no well-behaved client library lets one do, and records what the server sends back (GOAWAY,
 * RST_STREAM, the end of the connection). Header blocks use HPACK's static table and literals only.
 */
import tls from 'node:tls';

export const FRAME = { DATA: 0, HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, WINDOW_UPDATE: 8, CONTINUATION: 9 } as const;
export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;
export const ERROR = { NO_ERROR: 0, PROTOCOL_ERROR: 1, INTERNAL_ERROR: 2, CANCEL: 8, REFUSED_STREAM: 7, ENHANCE_YOUR_CALM: 0xb } as const;

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n');

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** A literal header field without indexing, new name (RFC 7541 §6.2.2), lengths under 127. */
function literal(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.from([0x00, name.length]), Buffer.from(name), Buffer.from([value.length]), Buffer.from(value)]);
}

/** The header block of `GET path` on `authority` over https (static-table entries for :method, :scheme). */
export function getBlock(path: string, authority = 'localhost'): Buffer {
  return Buffer.concat([
    Buffer.from([0x82, 0x87]),
    Buffer.from([0x04, path.length]),
    Buffer.from(path),
    Buffer.from([0x01, authority.length]),
    Buffer.from(authority),
  ]);
}

/** Header fields an attacker pads a CONTINUATION flood with (never a whole header block). */
export function junkFields(count: number): Buffer {
  return Buffer.concat(Array.from({ length: count }, (_, i) => literal(`x-junk-${i % 100}`, 'y'.repeat(100))));
}

export interface Received {
  /** The first GOAWAY the server sent. */
  goaway?: { lastStreamId: number; code: number };
  resets: Map<number, number>;
  /** Streams whose response HEADERS arrived. */
  answered: Set<number>;
  /** PING and SETTINGS acknowledgements received (the first SETTINGS ACK, for our own, included). */
  acks: number;
  closed: boolean;
}

export interface RawConnection {
  socket: tls.TLSSocket;
  received: Received;
  send(bytes: Buffer): boolean;
  /** Resolves once the server closed the connection or sent GOAWAY. */
  ended: Promise<void>;
}

/** Opens a TLS connection with ALPN h2, sends the preface and an empty SETTINGS, and acknowledges the server's. */
export function openRaw(port: number, ca: Buffer): Promise<RawConnection> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', ALPNProtocols: ['h2'] }, () => {
      if (socket.alpnProtocol !== 'h2') {
        reject(new Error(`ALPN chose ${String(socket.alpnProtocol)}`));
        return;
      }
      socket.write(Buffer.concat([PREFACE, frame(FRAME.SETTINGS, 0, 0)]));
      resolve(connection);
    });
    socket.on('error', () => {});
    const received: Received = { resets: new Map(), answered: new Set(), acks: 0, closed: false };
    let ended!: () => void;
    const connection: RawConnection = {
      socket,
      received,
      send: (bytes) => !socket.destroyed && socket.write(bytes),
      ended: new Promise<void>((done) => (ended = done)),
    };
    let pending = Buffer.alloc(0);
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 9) {
        const length = pending.readUIntBE(0, 3);
        if (pending.length < 9 + length) break;
        const [type, flags] = [pending[3], pending[4]];
        const streamId = pending.readUInt32BE(5) & 0x7fffffff;
        const payload = pending.subarray(9, 9 + length);
        pending = pending.subarray(9 + length);
        if ((type === FRAME.SETTINGS || type === FRAME.PING) && flags & FLAG.ACK) received.acks++;
        if (type === FRAME.SETTINGS && !(flags & FLAG.ACK)) socket.write(frame(FRAME.SETTINGS, FLAG.ACK, 0));
        else if (type === FRAME.GOAWAY) {
          received.goaway ??= { lastStreamId: payload.readUInt32BE(0) & 0x7fffffff, code: payload.readUInt32BE(4) };
          ended();
        } else if (type === FRAME.RST_STREAM) received.resets.set(streamId, payload.readUInt32BE(0));
        else if (type === FRAME.HEADERS) received.answered.add(streamId);
      }
    });
    socket.on('close', () => {
      received.closed = true;
      ended();
    });
  });
}
