/**
 * Cleartext HTTP/2 by `Upgrade: h2c` (RFC 7540 §3.2; gunicorn's `--http2-cleartext upgrade`): an HTTP/1.1
 * request from a trusted peer that asks to switch is answered 101 and becomes the HTTP/2 connection's
 * stream 1, answered over HTTP/2.
 *
 * Node's http2 has no API for that stream, so the request is written as the HEADERS frame its client would
 * have sent and handed to the session right after the client's preface and first SETTINGS frame: nghttp2
 * reads it as the client's first stream, and the client, which counts stream 1 as its own, reads the answer.
 * The header block is HPACK literals "without indexing", which leave the decoder's dynamic table as it was:
 * the client's own header blocks, encoded against a table that never saw stream 1, decode unchanged.
 *
 * Served over HTTP/1.1 instead, as RFC 7540 §3.2 lets a server do by ignoring the header: a request with a
 * body (the body would have to be read whole before the switch), one from a peer outside
 * `--forwarded-allow-ips`, one that lacks HTTP2-Settings, and every request while the actor drains.
 */
import http, { type IncomingMessage } from 'node:http';
import { TLSSocket } from 'node:tls';
import type { Duplex } from 'node:stream';
import { HTTP2_PREFACE } from '../shared/wire.js';

/** Does the comma-separated header value list `token`, in any case? */
function lists(value: string | string[] | undefined, token: string): boolean {
  if (value === undefined) return false;
  const joined = Array.isArray(value) ? value.join(',') : value;
  return joined.split(',').some((item) => item.trim().toLowerCase() === token);
}

const TOKEN68_URL = /^[A-Za-z0-9_-]*={0,2}$/;

/**
 * Does `req` ask to switch to HTTP/2 as RFC 7540 §3.2 describes it, and can it be switched: HTTP/1.1,
 * `Upgrade` naming h2c, one `HTTP2-Settings` field (base64url SETTINGS payload) named in `Connection` too,
 * and no body. The peer's trust is judged by the caller.
 */
export function asksForH2c(req: IncomingMessage): boolean {
  const { headers } = req;
  if (req.httpVersion !== '1.1' || req.method === 'CONNECT') return false;
  if (!lists(headers.upgrade, 'h2c') || !lists(headers.connection, 'http2-settings')) return false;
  const settings = headers['http2-settings'];
  if (typeof settings !== 'string' || !TOKEN68_URL.test(settings)) return false;
  // Each setting is 6 bytes: a payload of another length is not a SETTINGS payload.
  if (Buffer.from(settings, 'base64url').byteLength % 6 !== 0) return false;
  if (headers['transfer-encoding'] !== undefined) return false;
  const length = headers['content-length'];
  return length === undefined || Number(length) === 0;
}

/** Fields of HTTP/1.1 that mean nothing (or are forbidden) in HTTP/2 (RFC 9113 §8.2.2), and Host (`:authority`). */
const CONNECTION_FIELDS = new Set(['host', 'connection', 'upgrade', 'http2-settings', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te']);

/** An HPACK string literal, not Huffman-coded (RFC 7541 §5.2), its length a 7-bit-prefix integer (§5.1). */
function hpackString(text: string): Buffer {
  const bytes = Buffer.from(text, 'latin1');
  const length: number[] = [];
  if (bytes.byteLength < 127) length.push(bytes.byteLength);
  else {
    length.push(127);
    let rest = bytes.byteLength - 127;
    while (rest >= 128) {
      length.push((rest & 0x7f) | 0x80);
      rest >>>= 7;
    }
    length.push(rest);
  }
  return Buffer.concat([Buffer.from(length), bytes]);
}

/** The request's header list as HTTP/2 would carry it: pseudo-header fields first, lower-case names. */
export function http2FieldsOf(req: IncomingMessage): Array<[string, string]> {
  const target = req.url ?? '/';
  let authority = req.headers.host;
  let path = target;
  if (!target.startsWith('/') && target !== '*') {
    // An absolute-form target carries the authority itself.
    try {
      const url = new URL(target);
      authority = url.host;
      path = `${url.pathname}${url.search}`;
    } catch {
      path = target;
    }
  }
  const fields: Array<[string, string]> = [
    [':method', req.method ?? 'GET'],
    [':scheme', 'http'],
    [':path', path],
  ];
  if (authority) fields.push([':authority', authority]);
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (!CONNECTION_FIELDS.has(name) || (name === 'te' && raw[i + 1].trim().toLowerCase() === 'trailers')) fields.push([name, raw[i + 1]]);
  }
  return fields;
}

const FRAME_HEADERS = 0x1;
const FRAME_CONTINUATION = 0x9;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
/** SETTINGS_MAX_FRAME_SIZE's initial value: what a server accepts before its own SETTINGS are acknowledged. */
const INITIAL_MAX_FRAME_SIZE = 16_384;

function frame(type: number, flags: number, streamId: number, payload: Buffer): Buffer {
  const header = Buffer.alloc(9);
  header.writeUIntBE(payload.byteLength, 0, 3);
  header[3] = type;
  header[4] = flags;
  header.writeUInt32BE(streamId, 5);
  return Buffer.concat([header, payload]);
}

/**
 * The frames a client would have sent for `req` as stream 1: HEADERS with END_STREAM (the request has no
 * body), then CONTINUATION frames when the block is longer than a frame, the last one with END_HEADERS.
 */
export function firstStreamFrames(req: IncomingMessage): Buffer {
  // 0x00: a literal field "without indexing", with a new name (RFC 7541 §6.2.2).
  const block = Buffer.concat(http2FieldsOf(req).flatMap(([name, value]) => [Buffer.of(0), hpackString(name), hpackString(value)]));
  const frames: Buffer[] = [];
  for (let offset = 0; offset === 0 || offset < block.byteLength; offset += INITIAL_MAX_FRAME_SIZE) {
    const last = offset + INITIAL_MAX_FRAME_SIZE >= block.byteLength;
    const payload = block.subarray(offset, offset + INITIAL_MAX_FRAME_SIZE);
    if (offset === 0) frames.push(frame(FRAME_HEADERS, FLAG_END_STREAM | (last ? FLAG_END_HEADERS : 0), 1, payload));
    else frames.push(frame(FRAME_CONTINUATION, last ? FLAG_END_HEADERS : 0, 1, payload));
  }
  return Buffer.concat(frames);
}

/**
 * Where stream 1 goes in the bytes a client sends after the 101: after its preface and first frame (the
 * SETTINGS frame RFC 9113 §3.4 makes it send first). -1 while those are not all here.
 */
export function afterClientPreface(bytes: Buffer): number {
  const frameStart = HTTP2_PREFACE.byteLength;
  if (bytes.byteLength < frameStart + 9) return -1;
  const end = frameStart + 9 + bytes.readUIntBE(frameStart, 3);
  return bytes.byteLength >= end ? end : -1;
}

const SWITCHING = 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n';

export interface H2cUpgradeOptions {
  /** Is this peer trusted with cleartext HTTP/2 (`--forwarded-allow-ips`)? */
  trusted: (address: string | undefined) => boolean;
  /** Is the actor draining? A request then is answered over HTTP/1.1 and its connection closed. */
  draining: () => boolean;
  /** Starts HTTP/2 on the connection, its first stream included in the bytes it reads. */
  serve: (socket: Duplex) => void;
  /** The upgraded request is the connection's first HTTP/2 stream, counted when it starts: its HTTP/1.1 count is given back. */
  recount: (socket: Duplex) => void;
  /** How long the client has to send its preface after the 101 (`--header-timeout`). */
  prefaceTimeoutMs: number;
}

/** The request Node's parser is deciding about (Node 20 and 22: see takeH2cUpgrades). */
let askingToUpgrade: IncomingMessage | undefined;
const UPGRADE = Symbol('upgrade');

/**
 * Node's request class, told when a request asks to upgrade: Node before 24.9 decides whether a request is
 * an upgrade by `server.listenerCount('upgrade')` alone, right after it has built the request, with no way
 * to see which request. Its parser sets `upgrade` on each request it builds, and calls listenerCount before
 * it builds another, so the request last marked is the one asked about.
 */
class UpgradeAwareRequest extends http.IncomingMessage {}
// An accessor where IncomingMessage has a plain property, which Node's constructor and parser assign.
Object.defineProperty(UpgradeAwareRequest.prototype, 'upgrade', {
  get(this: { [UPGRADE]?: boolean }): boolean {
    return this[UPGRADE] ?? false;
  },
  set(this: IncomingMessage & { [UPGRADE]?: boolean }, value: boolean) {
    this[UPGRADE] = value;
    // eslint-disable-next-line @typescript-eslint/no-this-alias -- the request itself is what is remembered
    if (value) askingToUpgrade = this;
  },
});

/** The http.Server options that let takeH2cUpgrades see which request asks to upgrade. */
export const H2C_SERVER_OPTIONS = { IncomingMessage: UpgradeAwareRequest };

type UpgradeDecider = http.Server & { shouldUpgradeCallback?: (req: IncomingMessage) => boolean };

/**
 * Makes `server` switch the requests asksForH2c accepts from trusted peers to HTTP/2, and serve every other
 * upgrade request as it did: to whoever listens for 'upgrade', or as a plain request when nobody does.
 * `server` must have been created with H2C_SERVER_OPTIONS.
 */
export function takeH2cUpgrades(server: http.Server, options: H2cUpgradeOptions): void {
  const claimed = new WeakSet<IncomingMessage>();
  const listenerCount = server.listenerCount.bind(server);
  const claims = (req: IncomingMessage): boolean => {
    const socket = req.socket as Duplex & { remoteAddress?: string };
    if (socket instanceof TLSSocket || (socket as { encrypted?: boolean }).encrypted) return false;
    if (options.draining() || !asksForH2c(req) || !options.trusted(socket.remoteAddress)) return false;
    claimed.add(req);
    return true;
  };
  const decider = server as UpgradeDecider;
  if (typeof decider.shouldUpgradeCallback === 'function') {
    // Node 24.9 and later ask per request, then emit 'upgrade' only while someone listens for it: this
    // listener is that someone for a claimed request (which the emit below takes before any listener hears
    // it), and is not counted when deciding about the others.
    server.on('upgrade', () => {});
    decider.shouldUpgradeCallback = (req) => claims(req) || listenerCount('upgrade') > 1;
  } else {
    server.listenerCount = (event: string | symbol, listener?: (...args: unknown[]) => void): number => {
      // Node's parser asks this (of 'upgrade') just after it marked the request; anyone else is answered as before.
      const asking = askingToUpgrade;
      askingToUpgrade = undefined;
      if (event === 'upgrade' && asking && asking.method !== 'CONNECT' && claims(asking)) return 1;
      return listenerCount(event, listener);
    };
  }
  // Claimed upgrades are taken before any 'upgrade' listener (the app's WebSocket server) hears them.
  const emit = server.emit.bind(server) as (event: string | symbol, ...args: unknown[]) => boolean;
  server.emit = (event: string | symbol, ...args: unknown[]): boolean => {
    if (event === 'upgrade' && claimed.has(args[0] as IncomingMessage)) {
      switchToHttp2(args[0] as IncomingMessage, args[1] as Duplex, args[2] as Buffer, options);
      return true;
    }
    return emit(event, ...args);
  };
}

/** Answers 101, waits for the client's preface and SETTINGS, and hands the connection to HTTP/2 with stream 1 in it. */
function switchToHttp2(req: IncomingMessage, socket: Duplex, head: Buffer, options: H2cUpgradeOptions): void {
  const stream1 = firstStreamFrames(req);
  options.recount(socket);
  socket.write(SWITCHING);
  let received = head;
  const timer = setTimeout(() => socket.destroy(), options.prefaceTimeoutMs);
  const onData = (bytes: Buffer) => {
    received = received.byteLength === 0 ? bytes : Buffer.concat([received, bytes]);
    const wrongStart = !received
      .subarray(0, HTTP2_PREFACE.byteLength)
      .equals(HTTP2_PREFACE.subarray(0, Math.min(received.byteLength, HTTP2_PREFACE.byteLength)));
    const at = wrongStart ? -1 : afterClientPreface(received);
    if (at < 0 && !wrongStart) return;
    clearTimeout(timer);
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.pause();
    // A client that does not open with the preface gets what HTTP/2 says of it (GOAWAY PROTOCOL_ERROR).
    socket.unshift(wrongStart ? received : Buffer.concat([received.subarray(0, at), stream1, received.subarray(at)]));
    options.serve(socket);
  };
  const onClose = () => clearTimeout(timer);
  socket.on('data', onData);
  socket.once('close', onClose);
  socket.resume();
  // Bytes the client sent with its request: looked at once Node's parser has let go of the socket (this
  // runs inside its read), or a session started now would not read them.
  if (head.byteLength > 0) setImmediate(() => socket.destroyed || onData(Buffer.alloc(0)));
}
