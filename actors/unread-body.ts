/**
 * A request body the app did not read, on a keep-alive connection (gunicorn #3301). When the app answers
 * without reading the body, Node reads and discards the rest so the connection can carry its next request,
 * however long and large that rest is. We let it, within a cap: UNREAD_BODY_BYTES more bytes and
 * UNREAD_BODY_MS. A declared length with more than the cap left closes the connection at once; a chunked
 * body is counted as the parser hands it over and closes it at the cap. The response was sent whole
 * already, so the client loses nothing but the connection.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export const UNREAD_BODY_BYTES = 1024 * 1024;
export const UNREAD_BODY_MS = 5000;
/** A closed connection whose client never reads our FIN is cut after this long. */
const CLOSE_GRACE_MS = 1000;

export function capUnreadBody(req: IncomingMessage, res: ServerResponse): void {
  let received = 0;
  let discarding = false;
  let closing = false;
  const close = () => {
    if (closing) return;
    closing = true;
    const { socket } = req;
    socket.end();
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  };
  // What the parser handed over while the app ran, counted where it is pushed (the app's reading untouched).
  const push = req.push;
  req.push = function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk !== null && !discarding) received += (chunk as Uint8Array).byteLength ?? 0;
    return push.call(this, chunk, encoding);
  } as typeof req.push;
  // 'prefinish' comes before Node's own 'finish' handler, which would discard the rest of an unread body
  // without a way to count it: when the app never started reading, we discard it ourselves, counting.
  res.once('prefinish', () => {
    const state = req as IncomingMessage & { _consuming?: boolean };
    if (req.complete || req.socket.destroyed || !res.shouldKeepAlive || state._consuming) return;
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared - received > UNREAD_BODY_BYTES) {
      res.once('finish', close);
      return;
    }
    discarding = true;
    let discarded = 0;
    req.on('data', (chunk: Uint8Array) => {
      discarded += chunk.byteLength;
      if (discarded > UNREAD_BODY_BYTES) close();
    });
    const timer = setTimeout(() => {
      if (!req.complete) close();
    }, UNREAD_BODY_MS).unref();
    req.once('end', () => clearTimeout(timer));
  });
}
