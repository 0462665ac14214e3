/**
 * How the actor answers a request it refuses or cuts short (400, 408, 413, 500, 504...): a short text body
 * and `Connection: close`, since after a refusal the rest of the connection's bytes cannot be trusted to be
 * framed as the client meant. One place, so every refusal looks the same on the wire.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export function answerAndClose(res: ServerResponse, status: number, body: string): void {
  res.shouldKeepAlive = false;
  const headers = { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) };
  // An HTTP/2 stream ends alone (and HTTP/2 has no Connection header): its connection's other streams go on.
  if ('stream' in res) res.writeHead(status, headers);
  else res.writeHead(status, { ...headers, connection: 'close' });
  res.end(body);
}

/**
 * Ends the request for the app with `error`: its readers see the error, never an 'end' that would pass a
 * cut body for a whole one. The no-op listener keeps an app without an 'error' listener from crashing.
 */
export function failRequest(req: IncomingMessage, error: Error): void {
  req.on('error', () => {});
  req.destroy(error);
}
