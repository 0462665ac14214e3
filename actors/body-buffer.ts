/**
 * `--buffer-chunked-body N`: some frameworks take a request without Content-Length for one without a body
 * (gunicorn #2947). With this on, a chunked body is read whole first, up to N bytes (413 beyond), and the app
 * gets a request that carries it with a Content-Length and no Transfer-Encoding. Off by default: buffering
 * costs memory and takes upload progress away from apps that stream.
 */
import { IncomingMessage, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { answerTooLarge } from './body-limit.js';

export function isChunked(req: IncomingMessage): boolean {
  const encoding = req.headers['transfer-encoding'];
  return typeof encoding === 'string' && /(?:^|,)\s*chunked\s*$/i.test(encoding);
}

/**
 * Reads the body of `req` (at most `limit` bytes) and calls `serve` with a request that has it, with a length.
 * Past the limit the client gets 413 and `serve` is never called; a client gone mid-body is simply dropped.
 */
export function bufferChunkedBody(req: IncomingMessage, res: ServerResponse, limit: number, serve: (buffered: IncomingMessage) => void): void {
  const chunks: Buffer[] = [];
  let length = 0;
  const onData = (chunk: Buffer) => {
    length += chunk.length;
    if (length > limit) {
      req.off('data', onData);
      req.off('end', onEnd);
      answerTooLarge(res);
      return;
    }
    chunks.push(chunk);
  };
  const onEnd = () => serve(withBody(req, Buffer.concat(chunks, length)));
  req.on('data', onData);
  req.once('end', onEnd);
  req.on('error', () => {});
}

/** A request like `req`, whose body is `body`, announced with a Content-Length. */
function withBody(req: IncomingMessage, body: Buffer): IncomingMessage {
  const buffered = new IncomingMessage(req.socket as Socket);
  buffered.httpVersionMajor = req.httpVersionMajor;
  buffered.httpVersionMinor = req.httpVersionMinor;
  buffered.httpVersion = req.httpVersion;
  buffered.method = req.method;
  buffered.url = req.url;
  const headers = { ...req.headers, 'content-length': String(body.length) };
  delete headers['transfer-encoding'];
  buffered.headers = headers;
  const raw: string[] = [];
  for (let i = 0; i < req.rawHeaders.length; i += 2) {
    if (req.rawHeaders[i].toLowerCase() !== 'transfer-encoding') raw.push(req.rawHeaders[i], req.rawHeaders[i + 1]);
  }
  raw.push('Content-Length', String(body.length));
  buffered.rawHeaders = raw;
  buffered.trailers = req.trailers;
  buffered.rawTrailers = req.rawTrailers;
  if (body.length > 0) buffered.push(body);
  buffered.push(null);
  buffered.complete = true;
  return buffered;
}
