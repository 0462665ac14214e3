/**
 * Without a server: the rules a request head must meet before the app sees it (actors/request-rules.ts).
 * Requests are plain objects shaped like what Node's parser gives; the same rules over the wire are in
 * spec/conformance.test.ts (gunicorn's corpus), spec/smuggling.test.ts and spec/limits.test.ts.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { CONTENT_LENGTH, FORWARDING, HOST, TRANSFER_ENCODING, checkRequestHead, type HeadFacts } from '../../actors/request-rules.js';
import type { HeadLimits } from '../../shared/actor-protocol.js';

const LIMITS: HeadLimits = { requestLine: 4094, fields: 100, fieldSize: 8190 };

function head(rawHeaders: string[], { method = 'GET', url = '/', version = '1.1', http2 = false } = {}): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i].toLowerCase()] = rawHeaders[i + 1];
  const [major, minor] = version.split('.').map(Number);
  return {
    method,
    url,
    httpVersion: version,
    httpVersionMajor: major,
    httpVersionMinor: minor,
    rawHeaders: [...rawHeaders],
    headers,
    ...(http2 ? { stream: {} } : {}),
  } as unknown as IncomingMessage;
}

const check = (req: IncomingMessage, limits = LIMITS) => checkRequestHead(req, limits);

describe('request head rules', () => {
  it('pass an ordinary request, and say which watched fields it has', () => {
    const facts: HeadFacts = { fields: 0, contentLength: undefined };
    const req = head(['Host', 'app.example:8000', 'Content-Length', '5', 'X-Forwarded-For', '1.2.3.4', 'Accept', '*/*'], { method: 'POST' });
    assert.equal(checkRequestHead(req, LIMITS, 'drop', facts), null);
    assert.deepEqual(facts, { fields: HOST | CONTENT_LENGTH | FORWARDING, contentLength: '5' });
  });
  it('answer 505 to a version other than 1.x on HTTP/1 (an HTTP/2 stream passes)', () => {
    assert.deepEqual(check(head(['Host', 'h'], { version: '2.0' })), { status: 505, reason: 'HTTP/2.0 is not supported' });
    assert.equal(check(head([':authority', 'h', ':path', '/'], { version: '2.0', http2: true })), null);
  });
  it('answer 414 past the request line limit, counting method, target and version as gunicorn does', () => {
    const url = `/${'a'.repeat(100)}`;
    const lineLength = 'GET '.length + url.length + ' HTTP/1.1'.length;
    assert.equal(check(head(['Host', 'h'], { url }), { ...LIMITS, requestLine: lineLength }), null);
    assert.deepEqual(check(head(['Host', 'h'], { url }), { ...LIMITS, requestLine: lineLength - 1 }), {
      status: 414,
      reason: `request line longer than ${lineLength - 1} bytes`,
    });
    assert.equal(check(head(['Host', 'h'], { url: `/${'a'.repeat(10_000)}` }), { ...LIMITS, requestLine: 0 }), null, '0 is no limit');
  });
  it('answer 431 past the field count (HTTP/2 pseudo-fields not counted) and the field size (name: value CRLF)', () => {
    const fields = (n: number) => Array.from({ length: n }, (_, i) => [`X-${i}`, 'v']).flat();
    assert.equal(check(head(fields(3)), { ...LIMITS, fields: 3 }), null);
    assert.deepEqual(check(head(fields(4)), { ...LIMITS, fields: 3 }), { status: 431, reason: 'more than 3 header fields' });
    assert.equal(check(head([':authority', 'h', ':path', '/', ...fields(3)], { version: '2.0', http2: true }), { ...LIMITS, fields: 3 }), null);
    // "X-Big: " + value + CRLF: 5 + 2 + 10 + 2 = 19 bytes.
    assert.equal(check(head(['X-Big', 'v'.repeat(10)]), { ...LIMITS, fieldSize: 19 }), null);
    assert.deepEqual(check(head(['X-Big', 'v'.repeat(10)]), { ...LIMITS, fieldSize: 18 }), { status: 431, reason: 'header field X-Big longer than 18 bytes' });
  });
  it('refuse a second Host, Content-Length or Content-Type, in any case', () => {
    for (const name of ['Host', 'Content-Length', 'content-type'])
      assert.deepEqual(check(head([name, '1', name.toUpperCase(), '1'])), { status: 400, reason: `more than one ${name.toUpperCase()} header` });
  });
  it('refuse a Host that is not host[:port]', () => {
    for (const host of ['a b', 'a/b', 'h:80:90', 'h@evil', '[zz::1]'])
      assert.deepEqual(check(head(['Host', host])), { status: 400, reason: 'invalid Host header' }, host);
    for (const host of ['', 'h', 'h:80', '[::1]:8000', '127.0.0.1', 'xn--bcher-kva.example']) assert.equal(check(head(['Host', host])), null, host);
    assert.deepEqual(check(head([':authority', 'a b'], { version: '2.0', http2: true })), { status: 400, reason: 'invalid :authority' });
  });
  it('refuse Transfer-Encoding on HTTP/1.0 (it has no chunked framing to smuggle with)', () => {
    assert.deepEqual(check(head(['Transfer-Encoding', 'chunked'], { version: '1.0' })), { status: 400, reason: 'Transfer-Encoding on HTTP/1.0' });
    const facts: HeadFacts = { fields: 0, contentLength: undefined };
    assert.equal(checkRequestHead(head(['Transfer-Encoding', 'chunked']), LIMITS, 'drop', facts), null);
    assert.equal(facts.fields, TRANSFER_ENCODING);
  });
  it('hold each target form to the method that may use it', () => {
    const cases: Array<[string, string, string | null]> = [
      ['OPTIONS', '*', null],
      ['GET', '*', 'the asterisk target is for OPTIONS only'],
      ['CONNECT', 'example.com:443', null],
      ['CONNECT', '[::1]:443', null],
      ['CONNECT', 'example.com', 'CONNECT needs host:port'],
      ['GET', 'http://example.com/a?b', null],
      ['GET', 'http://exa mple.com/', 'invalid absolute URI'],
      ['GET', 'example.com:443', 'invalid request target'],
      ['GET', 'index.html', 'invalid request target'],
    ];
    for (const [method, url, reason] of cases)
      assert.deepEqual(check(head(['Host', 'h'], { method, url })), reason && { status: 400, reason }, `${method} ${url}`);
  });
  it('drop header names with _ by default, from rawHeaders and headers; refuse them, or let them through, when asked', () => {
    const dropped = head(['Host', 'h', 'X_Forwarded_For', '1.2.3.4', 'Accept', '*/*']);
    assert.equal(checkRequestHead(dropped, LIMITS, 'drop'), null);
    assert.deepEqual(dropped.rawHeaders, ['Host', 'h', 'Accept', '*/*']);
    assert.equal(dropped.headers.x_forwarded_for, undefined);
    assert.deepEqual(checkRequestHead(head(['X_A', '1']), LIMITS, 'refuse'), { status: 400, reason: "header name with '_': X_A" });
    const kept = head(['X_A', '1']);
    assert.equal(checkRequestHead(kept, LIMITS, 'dangerous'), null);
    assert.deepEqual(kept.rawHeaders, ['X_A', '1']);
  });
});
