/**
 * Keeps one failing request from taking the actor down: an app that throws, or whose returned promise
 * rejects, gets a 500 for that request only (or a closed connection if its response had already started).
 */
import type { IncomingMessage, RequestListener, ServerResponse } from 'node:http';
import { describeError, type Logger } from '../shared/log.js';
import { answerAndClose } from './answer.js';

export function answerAppError(req: IncomingMessage, res: ServerResponse, error: unknown, log: Logger): void {
  log.error(`error handling ${req.method} ${req.url}: ${describeError(error, true)}`);
  if (res.headersSent || res.writableEnded) {
    // Part of a response is on the wire: the client must not take it for a whole one.
    res.destroy();
    return;
  }
  answerAndClose(res, 500, 'Internal Server Error\n');
}

export function guardListener(listener: RequestListener, log: Logger): RequestListener {
  return (req, res) => {
    try {
      const result: unknown = listener(req, res);
      if (result instanceof Promise) result.catch((error: unknown) => answerAppError(req, res, error, log));
    } catch (error) {
      answerAppError(req, res, error, log);
    }
  };
}
