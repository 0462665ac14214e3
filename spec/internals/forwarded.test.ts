/**
 * Without a server: `--forwarded-allow-ips` (shared/forwarded.ts): which peers are trusted, what their
 * forwarding headers do, and what an untrusted peer's are turned into. Requests are plain objects shaped
 * like Node's IncomingMessage; spec/proxy.test.ts and spec/nginx.test.ts send the same over the wire.
 */
import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { checkAllowIps, createAddressMatcher, createForwardingPolicy } from '../../shared/forwarded.js';

function requestFrom(remoteAddress: string | undefined, rawHeaders: string[], url = '/path'): IncomingMessage {
  const headers: Record<string, string> = {};
  for (let i = 0; i < rawHeaders.length; i += 2) headers[rawHeaders[i].toLowerCase()] = rawHeaders[i + 1];
  return { socket: { remoteAddress }, headers, rawHeaders: [...rawHeaders], url } as unknown as IncomingMessage;
}

describe('--forwarded-allow-ips values', () => {
  it('takes IPs, CIDR networks of both families and *, with spaces and empty entries', () => {
    for (const text of ['127.0.0.1', '10.0.0.0/8, ::1', '*', '2001:db8::/32,,192.168.1.0/24 ', '']) assert.equal(checkAllowIps(text), null, text);
  });
  it('names the first bad entry', () => {
    assert.equal(checkAllowIps('127.0.0.1, localhost'), "'localhost' is not an IP address or network");
    assert.equal(checkAllowIps('10.0.0.0/33'), "'10.0.0.0/33' has a bad prefix length");
    assert.equal(checkAllowIps('::1/129'), "'::1/129' has a bad prefix length");
    assert.equal(checkAllowIps('10.0.0.0/8/8'), "'10.0.0.0/8/8' is not an IP address or network");
    assert.equal(checkAllowIps('10.0.0.0/x'), "'10.0.0.0/x' has a bad prefix length");
  });
});

describe('which peers are trusted', () => {
  const trusted = createAddressMatcher('127.0.0.1, 10.1.0.0/16, 2001:db8::/32');
  it('matches single addresses and networks of both families', () => {
    assert.deepEqual(['127.0.0.1', '127.0.0.2', '10.1.255.3', '10.2.0.1', '2001:db8::7', '2001:db9::1'].map(trusted), [true, false, true, false, true, false]);
  });
  it('matches an IPv4 peer seen on a dual-stack socket (::ffff:a.b.c.d) against the IPv4 entries', () => {
    assert.equal(trusted('::ffff:10.1.2.3'), true);
    assert.equal(trusted('::ffff:10.9.2.3'), false);
  });
  it('trusts a unix-socket peer (no address), as gunicorn does, and everyone with *', () => {
    assert.equal(trusted(undefined), true);
    assert.equal(createAddressMatcher('*')('203.0.113.9'), true);
    assert.equal(createAddressMatcher('')('203.0.113.9'), false);
  });
});

describe('forwarding headers', () => {
  const policy = createForwardingPolicy('127.0.0.1');
  const forwarded = [
    'Host',
    'app.example',
    'X-Forwarded-For',
    '203.0.113.9',
    'X-Forwarded-Proto',
    'https',
    'Forwarded',
    'for=203.0.113.9',
    'X-Real-IP',
    '1.2.3.4',
  ];

  it('from an untrusted peer: every forwarding header is removed, from headers and rawHeaders alike', () => {
    const req = requestFrom('192.0.2.1', [...forwarded, 'Accept', '*/*']);
    assert.equal(policy.apply(req, true), null);
    assert.deepEqual(req.headers, { host: 'app.example', accept: '*/*' });
    assert.deepEqual(req.rawHeaders, ['Host', 'app.example', 'Accept', '*/*']);
    assert.equal(req.url, '/path', 'no scheme taken from an untrusted peer');
  });
  it('from a trusted peer: the headers stay, and for a Fetch app a declared https becomes the target’s scheme', () => {
    const listener = requestFrom('127.0.0.1', forwarded);
    assert.equal(policy.apply(listener, false), null);
    assert.equal(listener.url, '/path');
    assert.equal(listener.headers['x-forwarded-for'], '203.0.113.9');
    const fetchApp = requestFrom('127.0.0.1', forwarded);
    assert.equal(policy.apply(fetchApp, true), null);
    assert.equal(fetchApp.url, 'https://app.example/path');
  });
  it('reads https from X-Forwarded-Protocol, X-Forwarded-Ssl and Forwarded too', () => {
    for (const extra of [
      ['X-Forwarded-Protocol', 'ssl'],
      ['X-Forwarded-Ssl', 'on'],
      ['Forwarded', 'for=1.2.3.4;proto=https'],
    ]) {
      const req = requestFrom('127.0.0.1', ['Host', 'h', ...extra]);
      policy.apply(req, true);
      assert.equal(req.url, 'https://h/path', extra.join(': '));
    }
    const plain = requestFrom('127.0.0.1', ['Host', 'h', 'X-Forwarded-Proto', 'http']);
    policy.apply(plain, true);
    assert.equal(plain.url, '/path');
  });
  it('refuses a trusted request whose scheme headers disagree (gunicorn’s InvalidSchemeHeaders)', () => {
    const req = requestFrom('127.0.0.1', ['Host', 'h', 'X-Forwarded-Proto', 'https', 'X-Forwarded-Ssl', 'off']);
    assert.deepEqual(policy.apply(req, false), { status: 400, reason: 'the X-Forwarded-Proto, X-Forwarded-Protocol and X-Forwarded-Ssl headers disagree' });
  });
  it('leaves a request without forwarding headers as it is', () => {
    const req = requestFrom('192.0.2.1', ['Host', 'h', 'Accept', '*/*']);
    assert.equal(policy.apply(req, true), null);
    assert.deepEqual(req.rawHeaders, ['Host', 'h', 'Accept', '*/*']);
  });
});
