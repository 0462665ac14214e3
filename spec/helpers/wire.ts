/**
 * A raw TCP client for what fetch cannot send: malformed, pipelined or half-closed requests. It parses the
 * responses that come back (status, headers, body by Content-Length or chunked) and notes whether the
 * server closed the connection.
 */
import net from 'node:net';

export interface WireResponse {
  status: number;
  reason: string;
  headers: Record<string, string>;
  body: Buffer;
}

export interface Exchange {
  responses: WireResponse[];
  /** The server closed (or reset) the connection before the deadline. */
  closed: boolean;
  raw: Buffer;
}

/** Parses as many complete responses as `raw` holds. HEAD responses are not distinguished (tests avoid them here). */
export function parseResponses(raw: Buffer): WireResponse[] {
  const responses: WireResponse[] = [];
  let offset = 0;
  for (;;) {
    const headEnd = raw.indexOf('\r\n\r\n', offset);
    if (headEnd < 0) break;
    const lines = raw.subarray(offset, headEnd).toString('latin1').split('\r\n');
    const statusLine = /^HTTP\/1\.[01] (\d{3}) ?(.*)$/.exec(lines[0]);
    if (!statusLine) break;
    const headers: Record<string, string> = {};
    for (const line of lines.slice(1)) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    let cursor = headEnd + 4;
    let body: Buffer;
    const status = Number(statusLine[1]);
    if (status === 100 || status === 101 || status === 204 || status === 304) {
      body = Buffer.alloc(0);
    } else if (headers['transfer-encoding']?.toLowerCase().includes('chunked')) {
      const parts: Buffer[] = [];
      let complete = false;
      for (;;) {
        const lineEnd = raw.indexOf('\r\n', cursor);
        if (lineEnd < 0) break;
        const size = parseInt(raw.subarray(cursor, lineEnd).toString('latin1'), 16);
        if (Number.isNaN(size)) break;
        if (size === 0) {
          const trailerEnd = raw.indexOf('\r\n\r\n', lineEnd);
          if (trailerEnd < 0) break;
          cursor = trailerEnd + 4;
          complete = true;
          break;
        }
        if (raw.length < lineEnd + 2 + size + 2) break;
        parts.push(raw.subarray(lineEnd + 2, lineEnd + 2 + size));
        cursor = lineEnd + 2 + size + 2;
      }
      if (!complete) break;
      body = Buffer.concat(parts);
    } else if (headers['content-length'] !== undefined) {
      const length = Number(headers['content-length']);
      if (raw.length < cursor + length) break;
      body = raw.subarray(cursor, cursor + length);
      cursor += length;
    } else {
      // Delimited by close: everything that is left.
      body = raw.subarray(cursor);
      cursor = raw.length;
    }
    responses.push({ status, reason: statusLine[2], headers, body });
    offset = cursor;
  }
  return responses;
}

export interface ExchangeOptions {
  /** Resolve as soon as this many responses are complete (the connection may stay open). */
  responses?: number;
  timeoutMs?: number;
  /** Half-close after sending. */
  endAfterWrite?: boolean;
}

export function exchange(port: number, request: Buffer | string, options: ExchangeOptions = {}): Promise<Exchange> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    const chunks: Buffer[] = [];
    let finished = false;
    const finish = (closed: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      socket.destroy();
      const raw = Buffer.concat(chunks);
      resolve({ responses: parseResponses(raw), closed, raw });
    };
    const timer = setTimeout(() => finish(false), options.timeoutMs ?? 3000);
    socket.on('data', (chunk) => {
      chunks.push(chunk);
      if (options.responses !== undefined && parseResponses(Buffer.concat(chunks)).length >= options.responses) finish(false);
    });
    socket.on('error', () => finish(true));
    socket.on('close', () => finish(true));
    socket.on('connect', () => {
      socket.write(request);
      if (options.endAfterWrite) socket.end();
    });
  });
}
