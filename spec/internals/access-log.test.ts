/**
 * Without a server: the access-log formatter (shared/access-log.ts), gunicorn's atoms one by one, request
 * and response headers, and the JSON format. Requests and responses are plain objects shaped like Node's;
 * spec/access-log.test.ts checks the lines real requests leave in the file.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { describe, it } from 'node:test';
import { DEFAULT_ACCESS_LOG_FORMAT, formatAccessLine, type AccessRecord } from '../../shared/access-log.js';

function record({ headers = {}, responseHeaders = {}, headBlock = null as string | null, bytes = 13 as number | undefined } = {}): AccessRecord {
  const req = { socket: { remoteAddress: '203.0.113.9' }, headers, httpVersion: '1.1' } as unknown as IncomingMessage;
  const res = {
    statusCode: 201,
    getHeader: (name: string) => (responseHeaders as Record<string, string>)[name.toLowerCase()],
    _header: headBlock,
  } as unknown as ServerResponse;
  // 1.5 s apart, in nanoseconds.
  return { req, method: 'POST', url: '/items/7?full=1&x=2', res, startedAt: 1_000_000_000n, finishedAt: 2_500_000_000n, bytes };
}

describe('access log lines', () => {
  it('the default format is gunicorn’s, with an Apache date in UTC', () => {
    const line = formatAccessLine(
      DEFAULT_ACCESS_LOG_FORMAT,
      record({ headers: { referer: 'https://from.example/', 'user-agent': 'curl/8', authorization: `Basic ${Buffer.from('ann:secret').toString('base64')}` } }),
    );
    assert.match(
      line,
      /^203\.0\.113\.9 - ann \[\d{2}\/[A-Z][a-z]{2}\/\d{4}:\d{2}:\d{2}:\d{2} \+0000\] "POST \/items\/7\?full=1&x=2 HTTP\/1\.1" 201 13 "https:\/\/from\.example\/" "curl\/8"$/,
    );
  });
  it('each atom', () => {
    const atoms = ['m', 'U', 'q', 'H', 's', 'b', 'B', 'T', 'D', 'L', 'l', 'u', 'f', 'a'].map((atom) => `${atom}=%(${atom})s`).join(' ');
    assert.equal(formatAccessLine(atoms, record()), 'm=POST U=/items/7 q=full=1&x=2 H=HTTP/1.1 s=201 b=13 B=13 T=1 D=1500000 L=1.500000 l=- u=- f=- a=-');
    assert.equal(formatAccessLine('%(p)s', record()), `<${process.pid}>`);
  });
  it('an unknown body size is - for b and 0 for B; a target without a query has an empty q', () => {
    const unknown = { ...record(), bytes: undefined };
    assert.equal(formatAccessLine('%(b)s %(B)s', unknown), '- 0');
    assert.equal(formatAccessLine('[%(q)s] %(U)s', { ...unknown, url: '/plain' }), '[] /plain');
  });
  it('request headers by %({name}i)s, response headers by %({name}o)s, also those only in the sent head block', () => {
    const sent = record({
      headers: { 'x-request-id': 'abc' },
      responseHeaders: { 'content-type': 'text/plain' },
      headBlock: 'HTTP/1.1 201 Created\r\nContent-Type: text/plain\r\nX-From-WriteHead:  yes\r\n\r\n',
    });
    assert.equal(
      formatAccessLine('%({X-Request-Id}i)s %({content-type}o)s %({x-from-writehead}o)s %({missing}i)s %({missing}o)s', sent),
      'abc text/plain yes - -',
    );
  });
  it('a basic-auth header without a user name, or another scheme, logs no user', () => {
    assert.equal(formatAccessLine('%(u)s', record({ headers: { authorization: `Basic ${Buffer.from(':pw').toString('base64')}` } })), '-');
    assert.equal(formatAccessLine('%(u)s', record({ headers: { authorization: 'Bearer x' } })), '-');
  });
  it('leaves what is not an atom as written', () => {
    assert.equal(formatAccessLine('%(zz)s %s 100%', record()), '%(zz)s %s 100%');
  });
  it('json: one object with the same facts', () => {
    const parsed = JSON.parse(formatAccessLine('json', record({ headers: { 'user-agent': 'curl/8' } }))) as Record<string, unknown>;
    assert.deepEqual(
      { ...parsed, time: typeof parsed.time },
      {
        remote: '203.0.113.9',
        user: null,
        time: 'string',
        method: 'POST',
        url: '/items/7?full=1&x=2',
        protocol: 'HTTP/1.1',
        status: 201,
        bytes: 13,
        referer: null,
        userAgent: 'curl/8',
        durationMs: 1500,
      },
    );
  });
});
