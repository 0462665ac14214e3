/**
 * `--sticky-sessions` on a connection that carries other actors' sessions: a proxy's kept-alive upstream
 * connection (nginx's `keepalive`) carries requests of many clients, so a request for a session another
 * actor holds can arrive here on a connection main placed for the session of its first request. Main cannot
 * move it (it sees only a connection's first request; after that the bytes may not even pass through it),
 * and an answer that sends the client elsewhere goes through the proxy, which may bring it back on the same
 * connection. So this actor forwards the request to the session's actor and relays the answer: Node's own
 * HTTP client writes it over a channel straight to that actor, whose server reads it as one more relayed
 * connection (a ConnectionHost on the channel's far end, the same code that reads main's relayed
 * connections) and answers as if the client were its own.
 *
 * Main only introduces the two actors, once per pair: this side makes a MessageChannel and asks main to pass
 * one end to the other actor (shared/wire.ts, `peer-port`). The bytes never cross main. Each forwarded
 * request is one connection on the channel, closed with its response. A forwarded request counts in flight
 * in both actors, and each writes its access log line.
 */
import http from 'node:http';
import { Duplex } from 'node:stream';
import { MessageChannel, type MessagePort } from 'node:worker_threads';
import { ACK_STEP, Frame, FrameBatcher, decodeBatch, type ConnectionInfo, type FrameType, type PeerPortRequest } from '../shared/wire.js';
import type { Logger } from '../shared/log.js';

/** Hop-by-hop fields (RFC 9110 §7.6.1): the connection to the other actor has its own. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

/** Raw header pairs without the hop-by-hop fields, as `[name, value, name, value, ...]`. */
function endToEnd(rawHeaders: readonly string[]): string[] {
  const kept: string[] = [];
  for (let i = 0; i < rawHeaders.length; i += 2) if (!HOP_BY_HOP.has(rawHeaders[i].toLowerCase())) kept.push(rawHeaders[i], rawHeaders[i + 1]);
  return kept;
}

/** This side of one forwarded connection: what Node's HTTP client writes and reads. */
class PeerSocket extends Duplex {
  private unacknowledged = 0;

  constructor(
    readonly id: number,
    private readonly link: PeerLink,
  ) {
    super();
  }

  override _read(): void {}

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (error?: Error | null) => void): void {
    this.link.batcher.push(Frame.Data, this.id, new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength));
    callback();
  }

  override _final(callback: (error?: Error | null) => void): void {
    this.link.batcher.push(Frame.End, this.id);
    callback();
  }

  override _destroy(error: Error | null, callback: (error?: Error | null) => void): void {
    if (this.link.sockets.delete(this.id)) this.link.batcher.push(Frame.Close, this.id);
    callback(error);
  }

  /** Bytes from the other actor; acknowledged as they come, so its credit window never closes. */
  receive(bytes: Uint8Array): void {
    this.push(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength));
    this.unacknowledged += bytes.byteLength;
    if (this.unacknowledged >= ACK_STEP) {
      this.link.batcher.push(Frame.Ack, this.id, this.unacknowledged);
      this.unacknowledged = 0;
    }
  }

  // What Node's HTTP client calls on a socket.
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  ref(): this {
    return this;
  }
  unref(): this {
    return this;
  }
}

/** One channel to another actor, for every request forwarded there. */
class PeerLink {
  readonly batcher: FrameBatcher;
  readonly sockets = new Map<number, PeerSocket>();
  private nextId = 1;

  constructor(
    private readonly port: MessagePort,
    onClose: () => void,
  ) {
    this.batcher = new FrameBatcher(port);
    port.on('message', (message: unknown) => {
      if (message instanceof ArrayBuffer) decodeBatch(message, this.onFrame);
    });
    // The other actor ended (its end of the channel closed with it): what was forwarded there fails.
    port.once('close', () => {
      onClose();
      for (const socket of this.sockets.values()) socket.destroy(new Error('the actor holding the session ended'));
      this.sockets.clear();
    });
    port.unref();
  }

  open(info: ConnectionInfo): PeerSocket {
    const socket = new PeerSocket(this.nextId++, this);
    this.sockets.set(socket.id, socket);
    this.batcher.push(Frame.Open, socket.id, info);
    return socket;
  }

  close(): void {
    this.port.close();
  }

  private readonly onFrame = (type: FrameType, id: number, payload: unknown): void => {
    const socket = this.sockets.get(id);
    if (!socket) return;
    if (type === Frame.Data) socket.receive(payload as Uint8Array);
    else if (type === Frame.End) socket.push(null);
    else if (type === Frame.Close) {
      this.sockets.delete(id);
      socket.destroy();
    }
  };
}

/** The forwarding side: one link per actor forwarded to, made on first use. */
export class SessionForwarder {
  private readonly links = new Map<number, PeerLink>();

  constructor(
    /** This actor's data port to main, which passes a channel's far end to the actor named. */
    private readonly mainPort: MessagePort,
    private readonly log: Logger,
  ) {}

  /** Forwards `req` to actor `owner` and relays its answer on `res`. */
  forward(owner: number, req: http.IncomingMessage, res: http.ServerResponse): void {
    const socket = this.linkTo(owner).open(connectionInfoOf(req.socket));
    const outgoing = http.request({
      // No agent: Node's client then asks createConnection for the socket, and closes it after the response.
      createConnection: () => socket as unknown as import('node:net').Socket,
      method: req.method,
      path: req.url,
      headers: endToEnd(req.rawHeaders),
      setHost: false,
    });
    outgoing.on('response', (answer) => {
      res.writeHead(answer.statusCode ?? 502, answer.statusMessage, endToEnd(answer.rawHeaders));
      answer.pipe(res);
    });
    outgoing.on('error', (error) => {
      this.log.debug(`forwarding ${req.method} ${req.url?.slice(0, 100)} to actor ${owner} failed: ${error.message}`);
      if (!res.headersSent) {
        res.statusCode = 502;
        res.setHeader('connection', 'close');
        res.end('Bad Gateway: the actor holding this session did not answer\n');
      } else res.destroy();
    });
    res.once('close', () => {
      if (!res.writableFinished) outgoing.destroy();
    });
    req.pipe(outgoing);
  }

  /**
   * Forwards an upgrade request (engine.io's switch from polling to WebSocket) to actor `owner`. Its answer
   * goes back on `client` as it comes: a 101 and from then on the bytes both ways, or a refusal, after
   * which the connection closes (it has left HTTP's framing on this side).
   */
  forwardUpgrade(owner: number, req: http.IncomingMessage, client: Duplex, head: Buffer): void {
    const socket = this.linkTo(owner).open(connectionInfoOf(client));
    const outgoing = http.request({
      createConnection: () => socket as unknown as import('node:net').Socket,
      method: req.method,
      path: req.url,
      headers: [...endToEnd(req.rawHeaders), 'Connection', 'Upgrade', 'Upgrade', req.headers.upgrade ?? 'websocket'],
      setHost: false,
    });
    const answerHead = (answer: http.IncomingMessage, fields: string[]) =>
      `HTTP/1.1 ${answer.statusCode} ${answer.statusMessage}\r\n${fields.map((field, i) => (i % 2 === 0 ? `${field}: ` : `${field}\r\n`)).join('')}\r\n`;
    outgoing.on('upgrade', (answer, upstream, upstreamHead) => {
      client.write(answerHead(answer, answer.rawHeaders));
      if (upstreamHead.byteLength > 0) client.write(upstreamHead);
      if (head.byteLength > 0) upstream.write(head);
      upstream.pipe(client);
      client.pipe(upstream);
      upstream.once('close', () => client.destroy());
      client.once('close', () => upstream.destroy());
      client.on('error', () => upstream.destroy());
    });
    outgoing.on('response', (answer) => {
      client.write(answerHead(answer, [...endToEnd(answer.rawHeaders), 'Connection', 'close']));
      answer.pipe(client);
    });
    outgoing.on('error', (error) => {
      this.log.debug(`forwarding the upgrade ${req.url?.slice(0, 100)} to actor ${owner} failed: ${error.message}`);
      client.destroy();
    });
    outgoing.end();
  }

  /** Closes every channel (the actor is stopping). */
  close(): void {
    for (const link of this.links.values()) link.close();
    this.links.clear();
  }

  private linkTo(owner: number): PeerLink {
    let link = this.links.get(owner);
    if (!link) {
      const { port1, port2 } = new MessageChannel();
      const made = new PeerLink(port1, () => {
        if (this.links.get(owner) === made) this.links.delete(owner);
      });
      link = made;
      this.links.set(owner, link);
      const request: PeerPortRequest = { kind: 'peer-port', actorId: owner, port: port2 };
      this.mainPort.postMessage(request, [port2]);
    }
    return link;
  }
}

/** What the other actor's relay socket tells its app of the client: this connection's own facts. */
function connectionInfoOf(socket: import('node:stream').Duplex): ConnectionInfo {
  const { remoteAddress, remotePort, remoteFamily, localAddress, localPort, encrypted } = socket as Duplex & Partial<ConnectionInfo>;
  return { remoteAddress, remotePort, remoteFamily, localAddress, localPort, ...(encrypted ? { encrypted: true } : {}) };
}
