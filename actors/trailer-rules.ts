/**
 * Fields a chunked request may not carry in its trailer section (RFC 9110 §6.5.1): framing, routing,
 * request modifiers and authentication. A proxy that merges trailers into the head (some
 * do) would let a client change the request after it was routed, e.g. a second Host. gunicorn refuses such
 * a request (its corpus: invalid/rfc9110_trailer_forbidden_*), and so do we: 400 and close if the app has not
 * answered yet, else the connection is cut; the app's readers see an error, never an 'end'.
 *
 * Trailers are known only when the parser ends the body, so the check hooks the parser's push of the end
 * (as body-limit.ts hooks its pushes of data), and only on chunked requests, the only ones with trailers.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.js';
import { silence } from './request-deadline.js';
import { answerAndClose, failRequest } from './answer.js';

const FORBIDDEN_IN_TRAILERS = new Set([
  // framing and connection management
  'transfer-encoding',
  'content-length',
  'connection',
  'keep-alive',
  'proxy-connection',
  'upgrade',
  'te',
  'trailer',
  // routing
  'host',
  // request modifiers: controls and authentication
  'cache-control',
  'expect',
  'max-forwards',
  'pragma',
  'range',
  'authorization',
  'proxy-authorization',
  'cookie',
  // Content metadata (Content-Type, ...) passes, as in gunicorn (its corpus: valid/012): Node keeps trailers
  // apart from the head (req.trailers), so they cannot change how the body was framed or routed.
]);

/** The first forbidden trailer field name, or undefined. */
export function forbiddenTrailer(rawTrailers: readonly string[]): string | undefined {
  for (let i = 0; i < rawTrailers.length; i += 2) {
    const name = rawTrailers[i].toLowerCase();
    if (FORBIDDEN_IN_TRAILERS.has(name) || name.startsWith('if-')) return rawTrailers[i];
  }
  return undefined;
}

export class ForbiddenTrailerError extends Error {
  constructor(readonly field: string) {
    super(`request trailer field not allowed: ${field}`);
    this.name = 'ForbiddenTrailerError';
  }
}

/** Refuses the request when its trailer section, once read, holds a forbidden field. */
export function refuseForbiddenTrailers(req: IncomingMessage, res: ServerResponse, log: Logger): void {
  const push = req.push;
  req.push = function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding) {
    if (chunk === null && this.rawTrailers.length > 0) {
      const field = forbiddenTrailer(this.rawTrailers);
      if (field !== undefined) {
        log.debug(`refused ${req.method} ${req.url?.slice(0, 100)}: 400 trailer field ${field}`);
        refuse(req, res, field);
        return false;
      }
    }
    return push.call(this, chunk, encoding);
  } as typeof req.push;
}

function refuse(req: IncomingMessage, res: ServerResponse, field: string): void {
  if (res.headersSent || res.writableEnded) {
    res.destroy();
  } else {
    answerAndClose(res, 400, `Bad Request: trailer field ${field} is not allowed\n`);
    silence(res);
  }
  failRequest(req, new ForbiddenTrailerError(field));
}
