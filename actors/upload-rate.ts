/**
 * `--body-min-rate`: an upload that arrives slower than this many bytes a second, measured over windows of
 * RATE_WINDOW_MS, is answered 408 and its connection closed (R-U-Dead-Yet: a body trickled a byte at a
 * time holds a request slot forever otherwise; `--body-timeout` alone allows it for 300 s).
 *
 * Only the client is judged, never the app: a window in which the app left body bytes unread (the request
 * stream had data waiting, so the parser had stopped reading the socket) does not count. Bytes are counted
 * where the parser pushes them into the request, so the app's own way of reading is untouched.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../shared/log.js';
import { silence } from './request-deadline.js';
import { answerAndClose, failRequest } from './answer.js';
import { SLICE_GAP_MS, SliceBudget } from '../shared/shedding.js';

export const RATE_WINDOW_MS = 10_000;
const CHECK_MS = 1000;
/**
 * Slow uploads answered per event-loop turn when many expire at once. An expiry costs ~150 µs (a 408
 * written, request and socket torn down); 1,000 uploads opened together expire together, and slices of 32
 * (~5 ms, more on a contended core) still showed in ordinary requests' latency (probe max 32-37 ms vs
 * 18-25 ms with 8, 3 runs each).
 */
const EXPIRE_SLICE = 8;
const BODY = 'Request Timeout: request body arriving too slowly\n';

export class SlowUploadError extends Error {
  constructor(rate: number) {
    super(`request body arriving slower than ${rate} bytes/s (--body-min-rate)`);
    this.name = 'TimeoutError';
  }
}

interface Upload {
  res: ServerResponse;
  windowStart: number;
  bytesInWindow: number;
  /** The app left bytes unread at some check in this window: the window says nothing about the client. */
  appBehind: boolean;
}

export class UploadRateGuard {
  private readonly uploads = new Map<IncomingMessage, Upload>();

  constructor(
    private readonly minRate: number,
    private readonly log: Logger,
  ) {
    // Lives as long as the actor's server (the thread), so the timer is never cleared; unref'd so it never
    // keeps a stopping actor alive.
    setInterval(() => this.check(), CHECK_MS).unref();
  }

  watch(req: IncomingMessage, res: ServerResponse): void {
    const upload: Upload = { res, windowStart: Date.now(), bytesInWindow: 0, appBehind: false };
    this.uploads.set(req, upload);
    const push = req.push;
    req.push = function (this: IncomingMessage, chunk: unknown, encoding?: BufferEncoding) {
      if (chunk !== null) upload.bytesInWindow += (chunk as Uint8Array).byteLength ?? 0;
      return push.call(this, chunk, encoding);
    } as typeof req.push;
    const forget = () => this.uploads.delete(req);
    req.once('end', forget);
    req.once('close', forget);
    res.once('close', forget);
  }

  private check(): void {
    const now = Date.now();
    const slow: Array<{ req: IncomingMessage; res: ServerResponse; rate: number }> = [];
    for (const [req, upload] of this.uploads) {
      if (req.complete) {
        this.uploads.delete(req);
        continue;
      }
      if (req.readableLength > 0) upload.appBehind = true;
      if (now - upload.windowStart < RATE_WINDOW_MS) continue;
      const rate = (upload.bytesInWindow * 1000) / (now - upload.windowStart);
      if (rate < this.minRate && !upload.appBehind) {
        this.uploads.delete(req);
        slow.push({ req, res: upload.res, rate });
        continue;
      }
      upload.windowStart = now;
      upload.bytesInWindow = 0;
      upload.appBehind = req.readableLength > 0;
    }
    if (slow.length === 0) return;
    // An attack makes hundreds expire in the same check: one line for all of them, not a flood.
    const { req, rate } = slow[0];
    const others = slow.length > 1 ? ` and ${slow.length - 1} more` : '';
    this.log.warning(
      `slow upload (${rate.toFixed(1)} bytes/s < --body-min-rate ${this.minRate}): ${req.method} ${req.url?.slice(0, 200)}${others} answered 408`,
    );
    this.expireInSlices(slow, 0);
  }

  /**
   * Answers the slow uploads EXPIRE_SLICE at a time (fewer if they take over SLICE_BUDGET_MS), slices
   * SLICE_GAP_MS apart (shared/shedding.ts), so
   * that ordinary requests arriving meanwhile are not held up behind hundreds of 408s (measured: 500 in one
   * turn delayed other requests by 40-100 ms).
   */
  private expireInSlices(slow: Array<{ req: IncomingMessage; res: ServerResponse }>, from: number): void {
    const most = Math.min(slow.length, from + EXPIRE_SLICE);
    const budget = new SliceBudget();
    let next = from;
    // No stack traces for the errors this makes (ours and Node's, as each request and socket is torn
    // down): nobody reads them, and capturing them was a fifth of an expiry's cost.
    const stackTraceLimit = Error.stackTraceLimit;
    Error.stackTraceLimit = 0;
    try {
      while (next < most) {
        this.expire(slow[next].req, slow[next].res);
        next++;
        if (budget.spent()) break;
      }
    } finally {
      Error.stackTraceLimit = stackTraceLimit;
    }
    if (next < slow.length) setTimeout(() => this.expireInSlices(slow, next), SLICE_GAP_MS).unref();
  }

  private expire(req: IncomingMessage, res: ServerResponse): void {
    if (!res.headersSent && !res.writableEnded && !res.destroyed) {
      answerAndClose(res, 408, BODY);
      silence(res);
    } else {
      res.destroy();
    }
    failRequest(req, new SlowUploadError(this.minRate));
  }
}
