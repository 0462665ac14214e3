/**
 * `--limit-request-body`: the most bytes of request body an app is given. A declared Content-Length over
 * the limit is refused before the app sees the request; a chunked (or otherwise unbounded) body is counted
 * as it arrives, and the request is cut at the limit: 413 if the app has not answered yet, else the
 * connection closes. Counting hooks the parser's push into the request stream, so the app's own way of
 * reading (streams, async iteration, body parsers) is untouched.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { silence } from './request-deadline.js';
import { answerAndClose, failRequest } from './answer.js';

export class BodyTooLargeError extends Error {
  readonly status = 413;
  constructor(limit: number) {
    super(`request body larger than ${limit} bytes (--limit-request-body)`);
    this.name = 'BodyTooLargeError';
  }
}

const BODY = 'Content Too Large\n';

export function answerTooLarge(res: ServerResponse): void {
  if (res.headersSent || res.writableEnded) {
    res.destroy();
    return;
  }
  answerAndClose(res, 413, BODY);
}

/** True when the declared length is over the limit: the caller answers 413 without calling the app. */
export function declaredTooLarge(req: IncomingMessage, limit: number): boolean {
  const declared = req.headers['content-length'];
  return declared !== undefined && Number(declared) > limit;
}

/** Counts the body as the parser hands it over; past the limit the app gets no more of it and 413 goes out. */
export function countBody(req: IncomingMessage, res: ServerResponse, limit: number): void {
  let received = 0;
  let over = false;
  const push = req.push;
  req.push = function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding) {
    if (over) return false;
    if (chunk !== null) {
      received += (chunk as Uint8Array).byteLength ?? 0;
      if (received > limit) {
        over = true;
        answerTooLarge(res);
        silence(res);
        // Once the 413 is out, the app's readers see an error, never a cut body taken for a whole one.
        const fail = () => failRequest(req, new BodyTooLargeError(limit));
        if (res.writableFinished || res.destroyed) fail();
        else res.once('finish', fail);
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  } as typeof req.push;
}
