/**
 * `--request-timeout`: a deadline from a request's head to its response's head. An app that has not
 * started answering by then gets its request answered `504 Gateway Timeout` (with `Connection: close`),
 * and is told: a Fetch app's `request.signal` aborts, a listener app's request emits 'close' (and
 * 'aborted' if its body was still arriving). A response that has started is not cut: a stream that is
 * under way (server-sent events, a download) is answering, not stuck.
 *
 * The app may still answer later, as apps waiting on a slow upstream do. Its late writes must not throw
 * into its callbacks (an uncaught ERR_HTTP_HEADERS_SENT would take the whole actor down), so the response
 * object stops taking them once the 504 has been sent.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.js';
import { answerAndClose, failRequest } from './answer.js';

export class RequestTimeoutError extends Error {
  constructor(seconds: number) {
    super(`request timeout: no response within ${seconds} s (--request-timeout)`);
    this.name = 'TimeoutError';
  }
}

const BODY = 'Gateway Timeout\n';

/** Makes the app's later writes to this response no-ops (the server has answered in its place). */
export function silence(res: ServerResponse): void {
  const ignored = res as unknown as Record<string, unknown>;
  ignored.writeHead = () => res;
  ignored.setHeader = () => res;
  ignored.appendHeader = () => res;
  ignored.removeHeader = () => undefined;
  ignored.flushHeaders = () => undefined;
  ignored.write = (...args: unknown[]) => {
    const callback = args.find((arg) => typeof arg === 'function') as (() => void) | undefined;
    callback?.();
    return true;
  };
  ignored.end = (...args: unknown[]) => {
    const callback = args.find((arg) => typeof arg === 'function') as (() => void) | undefined;
    callback?.();
    return res;
  };
}

function expire(req: IncomingMessage, res: ServerResponse, seconds: number, log: Logger): void {
  if (res.headersSent || res.writableEnded || res.destroyed) return;
  log.warning(`request timeout (${seconds} s): ${req.method} ${req.url?.slice(0, 200)} answered 504`);
  answerAndClose(res, 504, BODY);
  silence(res);
  // Tell the app. The error marks the request as errored (the Fetch adapter aborts request.signal with it).
  failRequest(req, new RequestTimeoutError(seconds));
}

/** Arms the deadline for one request; it disarms itself when the response closes. */
export function armRequestDeadline(req: IncomingMessage, res: ServerResponse, seconds: number, log: Logger): void {
  const timer = setTimeout(expire, seconds * 1000, req, res, seconds, log);
  res.once('close', () => clearTimeout(timer));
}
