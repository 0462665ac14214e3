/**
 * Access log lines, built in the actor when a response ends, in gunicorn's format language:
 * `%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"` by default, `%({name}i)s` for a request
 * header, `%({name}o)s` for a response header. The format `json` gives one JSON object per line instead.
 * Only built when an access log is configured: with none, a request pays nothing here.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';

export const DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"';

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

/** `[23/Nov/2026:22:40:30 +0000]`, as gunicorn (and Apache) write it. */
function clf(date: Date): string {
  const pad = (n: number) => String(n).padStart(2, '0');
  return `[${pad(date.getUTCDate())}/${MONTHS[date.getUTCMonth()]}/${date.getUTCFullYear()}:${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}:${pad(date.getUTCSeconds())} +0000]`;
}

function basicAuthUser(header: string | undefined): string | undefined {
  if (!header?.startsWith('Basic ')) return undefined;
  const decoded = Buffer.from(header.slice(6), 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon > 0 ? decoded.slice(0, colon) : undefined;
}

/**
 * A response header as sent. `getHeader` misses headers given to `writeHead(status, { ... })`, which Node
 * writes straight into the header block, so that block (`_header`, set once the head is sent) is the fallback.
 */
function sentHeader(res: ServerResponse, name: string): string | undefined {
  const stored = res.getHeader(name);
  if (stored !== undefined) return String(stored);
  const block = (res as ServerResponse & { _header?: string | null })._header;
  if (!block) return undefined;
  const match = new RegExp(`\r\n${name.replace(/[^\w-]/g, '')}:[ \t]*([^\r\n]*)`, 'i').exec(block);
  return match?.[1];
}

export interface AccessRecord {
  req: IncomingMessage;
  /**
   * The request's method and target as they arrived: frameworks rewrite `req.url` while routing (Connect
   * and Express strip a mount path) and may rewrite `req.method` (method-override).
   */
  method: string | undefined;
  url: string;
  res: ServerResponse;
  startedAt: bigint;
  finishedAt: bigint;
  /** Bytes of the response body, or undefined when unknown. */
  bytes: number | undefined;
}

export function formatAccessLine(format: string, { req, method, url, res, startedAt, finishedAt, bytes }: AccessRecord): string {
  const query = url.indexOf('?');
  const micros = Number((finishedAt - startedAt) / 1000n);
  const atoms: Record<string, () => string> = {
    h: () => req.socket.remoteAddress ?? '-',
    l: () => '-',
    u: () => basicAuthUser(req.headers.authorization) ?? '-',
    t: () => clf(new Date()),
    r: () => `${method} ${url} HTTP/${req.httpVersion}`,
    m: () => method ?? '-',
    U: () => (query < 0 ? url : url.slice(0, query)),
    q: () => (query < 0 ? '' : url.slice(query + 1)),
    H: () => `HTTP/${req.httpVersion}`,
    s: () => String(res.statusCode),
    b: () => (bytes === undefined ? '-' : String(bytes)),
    B: () => String(bytes ?? 0),
    f: () => req.headers.referer ?? '-',
    a: () => req.headers['user-agent'] ?? '-',
    T: () => String(Math.floor(micros / 1_000_000)),
    D: () => String(micros),
    L: () => (micros / 1_000_000).toFixed(6),
    p: () => `<${process.pid}>`,
  };
  if (format === 'json') {
    return JSON.stringify({
      remote: atoms.h(),
      user: basicAuthUser(req.headers.authorization) ?? null,
      time: new Date().toISOString(),
      method,
      url,
      protocol: atoms.H(),
      status: res.statusCode,
      bytes: bytes ?? null,
      referer: req.headers.referer ?? null,
      userAgent: req.headers['user-agent'] ?? null,
      durationMs: micros / 1000,
    });
  }
  return format.replace(/%\((\{([^}]+)\}([io])|\w)\)s/g, (whole, atom: string, header?: string, side?: string) => {
    if (header) {
      const value = side === 'i' ? req.headers[header.toLowerCase()] : sentHeader(res, header);
      return value === undefined ? '-' : String(value);
    }
    return atoms[atom]?.() ?? whole;
  });
}
