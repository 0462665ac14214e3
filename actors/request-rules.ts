/**
 * Rules a request head must meet before the app sees it, beyond what Node's parser enforces. They follow
 * gunicorn's parser (its corpus is our conformance test) and RFC 9110/9112:
 * - limits on the request line, the number of header fields and the size of one field (gunicorn's
 *   defaults 4094, 100 and 8190 bytes), answered 414 and 431;
 * - at most one Host, Content-Length and Content-Type (two Hosts is a classic routing attack), and a
 *   Host that is a host[:port] (no spaces, slashes or other bytes a router might read differently);
 * - no Transfer-Encoding on HTTP/1.0 (a smuggling vector: 1.0 has no chunked framing);
 * - a request target of the form its method allows (`*` for OPTIONS only, authority-form for CONNECT
 *   only, absolute-form a valid URI);
 * - HTTP/1.0 and HTTP/1.1 only (505 otherwise).
 * Header names with `_` are dropped, as gunicorn's and nginx's defaults do: behind a proxy that maps `_` and
 * `-` alike they would let a client forge a header the proxy set.
 */
import type { HeaderMap } from '../shared/settings-values.js';
import type { HeadLimits } from '../shared/actor-protocol.js';
import type { IncomingMessage } from 'node:http';
import { FORWARDING_HEADERS } from '../shared/forwarded.js';

/**
 * What to do with header names containing `_` (gunicorn's `header_map`): `drop` them (default), `refuse`
 * the request (400), or pass them through (`dangerous`).
 */

/** A request that arrived on an HTTP/2 stream (Node's compatibility request), not an HTTP/1.x one. */
export function isHttp2Request(req: IncomingMessage): boolean {
  return 'stream' in req;
}

export interface Rejection {
  status: 400 | 414 | 431 | 505;
  reason: string;
}

/** RFC 9110 §7.2: uri-host [":" port]; reg-name characters, or an IP literal in brackets. May be empty. */
const VALID_HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~!$&'()*+,;=%]*)(?::\d*)?$/;
/** The last Host value found valid: a connection, often every client, sends the same one each request. */
let lastValidHost: string | undefined;
function isValidHost(value: string): boolean {
  if (value === lastValidHost) return true;
  if (!VALID_HOST.test(value)) return false;
  lastValidHost = value;
  return true;
}
/** Bits of HeadFacts.fields: which of the header fields that matter per request the head has. */
export const HOST = 1;
export const CONTENT_LENGTH = 2;
export const CONTENT_TYPE = 4;
export const TRANSFER_ENCODING = 8;
/** Any of forwarded.ts's FORWARDING_HEADERS (X-Forwarded-For, Forwarded, ...). */
export const FORWARDING = 16;
/** The fields whose repetition is refused. */
const SINGLE = HOST | CONTENT_LENGTH | CONTENT_TYPE;
const FORWARDING_NAMES = new Set<string>(FORWARDING_HEADERS);
const FORWARDING_LENGTHS = new Set<number>(FORWARDING_HEADERS.map((name) => name.length));

/**
 * Which watched field `name` is (0: none). This runs for every field of every request, so names are
 * compared by length first and lower-cased only when the length matches one of the watched names.
 */
function watchedHeader(name: string): number {
  switch (name.length) {
    case 4:
      return name.toLowerCase() === 'host' ? HOST : 0;
    case 12:
      return name.toLowerCase() === 'content-type' ? CONTENT_TYPE : 0;
    case 14:
      return name.toLowerCase() === 'content-length' ? CONTENT_LENGTH : 0;
    case 17: {
      const lower = name.toLowerCase();
      return lower === 'transfer-encoding' ? TRANSFER_ENCODING : FORWARDING_NAMES.has(lower) ? FORWARDING : 0;
    }
    default:
      return FORWARDING_LENGTHS.has(name.length) && FORWARDING_NAMES.has(name.toLowerCase()) ? FORWARDING : 0;
  }
}

/**
 * What the rules' one pass over the header fields learnt, for the rest of the request's wiring
 * (request-pipeline.ts), which would otherwise look each name up again in `req.headers`.
 */
export interface HeadFacts {
  /** HOST | CONTENT_LENGTH | ... for the fields present. */
  fields: number;
  /** The Content-Length value, when there is one. */
  contentLength: string | undefined;
}

function checkTarget(method: string, target: string): string | null {
  if (target.startsWith('/')) return null;
  if (target === '*') return method === 'OPTIONS' ? null : 'the asterisk target is for OPTIONS only';
  if (method === 'CONNECT') return /^[^\s/?#@]+:\d+$/.test(target) || /^\[[0-9A-Fa-f:.]+\]:\d+$/.test(target) ? null : 'CONNECT needs host:port';
  if (/^[A-Za-z][A-Za-z0-9+.-]*:\/\//.test(target)) {
    try {
      new URL(target);
      return null;
    } catch {
      return 'invalid absolute URI';
    }
  }
  return 'invalid request target';
}

/**
 * Checks the head and drops `_` header names in place. Returns why the request must be refused, or null;
 * `facts`, when given, is filled in as the fields are checked (all of them when null is returned).
 */
export function checkRequestHead(req: IncomingMessage, limits: HeadLimits, headerMap: HeaderMap = 'drop', facts?: HeadFacts): Rejection | null {
  const method = req.method ?? '';
  const target = req.url ?? '';
  // HTTP/2 requests pass the same rules (gunicorn 26.2): their pseudo-header fields (`:method`, `:path`,
  // `:scheme`, `:authority`) are the request line, and `:authority` is held to the Host rules.
  // An HTTP/2 stream's request (Http2ServerRequest) has its stream; an HTTP/1.x request line that merely
  // says HTTP/2.0 has none, and is refused like any other version.
  const http2 = isHttp2Request(req);
  if (req.httpVersionMajor !== 1 && !http2) return { status: 505, reason: `HTTP/${req.httpVersion} is not supported` };
  const requestLineLength = method.length + 1 + target.length + 1 + 8;
  if (limits.requestLine > 0 && requestLineLength > limits.requestLine) {
    return { status: 414, reason: `request line longer than ${limits.requestLine} bytes` };
  }
  const raw = req.rawHeaders;
  let pseudo = 0;
  if (http2) for (let i = 0; i < raw.length && raw[i].charCodeAt(0) === 0x3a; i += 2) pseudo++;
  if (limits.fields > 0 && raw.length / 2 - pseudo > limits.fields) return { status: 431, reason: `more than ${limits.fields} header fields` };
  const fieldSize = limits.fieldSize;
  let seen = 0;
  let dropped = false;
  if (facts) facts.contentLength = undefined;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (http2 && name.charCodeAt(0) === 0x3a) {
      if (name === ':authority' && !isValidHost(raw[i + 1])) return { status: 400, reason: 'invalid :authority' };
      continue;
    }
    if (name.length + 2 + raw[i + 1].length + 2 > fieldSize) {
      return { status: 431, reason: `header field ${name} longer than ${fieldSize} bytes` };
    }
    const watched = watchedHeader(name);
    if (watched === TRANSFER_ENCODING) {
      if (req.httpVersionMinor === 0) return { status: 400, reason: 'Transfer-Encoding on HTTP/1.0' };
    } else if (watched & SINGLE) {
      if (seen & watched) return { status: 400, reason: `more than one ${name} header` };
      if (watched === HOST && !isValidHost(raw[i + 1])) return { status: 400, reason: 'invalid Host header' };
      if (watched === CONTENT_LENGTH && facts) facts.contentLength = raw[i + 1];
    }
    seen |= watched;
    if (headerMap !== 'dangerous' && name.includes('_')) {
      if (headerMap === 'refuse') return { status: 400, reason: `header name with '_': ${name}` };
      dropped = true;
    }
  }
  if (facts) facts.fields = seen;
  const targetProblem = checkTarget(method, target);
  if (targetProblem) return { status: 400, reason: targetProblem };
  if (dropped) {
    const kept: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      if (!raw[i].includes('_')) kept.push(raw[i], raw[i + 1]);
      // Node has already built req.headers for an HTTP/1.1 request (it looks for Expect), so drop it there too.
      else delete req.headers[raw[i].toLowerCase()];
    }
    raw.splice(0, raw.length, ...kept);
  }
  return null;
}
