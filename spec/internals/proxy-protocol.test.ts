/**
 * Without a server: the PROXY protocol parser (shared/proxy-protocol.ts), v1 and v2, on the examples of
 * HAProxy's spec and on what a hostile peer might send. The same cases over real sockets are in
 * spec/deferred.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseProxyHeader } from '../../shared/proxy-protocol.js';

const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);

/** A v2 header: version 2, `command` (0 LOCAL, 1 PROXY), `familyProtocol`, then `addresses`. */
function v2(command: number, familyProtocol: number, addresses: Buffer): Buffer {
  const fixed = Buffer.alloc(4);
  fixed[0] = 0x20 | command;
  fixed[1] = familyProtocol;
  fixed.writeUInt16BE(addresses.length, 2);
  return Buffer.concat([V2_SIGNATURE, fixed, addresses]);
}

function ipv4Addresses(source: number[], destination: number[], sourcePort: number, destinationPort: number): Buffer {
  const bytes = Buffer.alloc(12);
  Buffer.from(source).copy(bytes, 0);
  Buffer.from(destination).copy(bytes, 4);
  bytes.writeUInt16BE(sourcePort, 8);
  bytes.writeUInt16BE(destinationPort, 10);
  return bytes;
}

describe('PROXY v1', () => {
  it('reads the client of TCP4 and TCP6 lines, and the header length the request starts after', () => {
    const line = 'PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n';
    assert.deepEqual(parseProxyHeader(Buffer.from(`${line}GET / HTTP/1.1\r\n`)), {
      kind: 'header',
      length: line.length,
      client: { address: '192.168.0.1', port: 56324, family: 'IPv4' },
    });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY TCP6 2001:db8::1 ::1 65535 8000\r\n')), {
      kind: 'header',
      length: 39,
      client: { address: '2001:db8::1', port: 65535, family: 'IPv6' },
    });
  });
  it('UNKNOWN keeps the socket’s own peer', () => {
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN\r\n')), { kind: 'header', length: 15 });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXY UNKNOWN ffff::1 ffff::2 1 2\r\n')), { kind: 'header', length: 35 });
  });
  it('waits while the line may still be arriving, a byte at a time', () => {
    const line = 'PROXY TCP4 10.0.0.1 10.0.0.2 1000 80\r\n';
    for (let n = 1; n < line.length; n++) assert.equal(parseProxyHeader(Buffer.from(line.slice(0, n))).kind, 'partial', `after ${n} bytes`);
    assert.equal(parseProxyHeader(Buffer.from(line)).kind, 'header');
  });
  it('is not there when the bytes are a request, even one that starts like it', () => {
    assert.deepEqual(parseProxyHeader(Buffer.from('GET / HTTP/1.1\r\n')), { kind: 'none' });
    assert.deepEqual(parseProxyHeader(Buffer.from('PROXZ')), { kind: 'none' });
    assert.deepEqual(parseProxyHeader(Buffer.from('PRO')), { kind: 'partial' });
  });
  const invalid: Array<[string, RegExp]> = [
    ['PROXY TCP4 not-an-ip 10.0.0.2 1000 80\r\n', /bad address/],
    ['PROXY TCP4 2001:db8::1 10.0.0.2 1000 80\r\n', /bad address/],
    ['PROXY TCP6 10.0.0.1 10.0.0.2 1000 80\r\n', /bad address/],
    ['PROXY TCP4 10.0.0.1 10.0.0.2 65536 80\r\n', /invalid port/],
    ['PROXY TCP4 10.0.0.1 10.0.0.2 -1 80\r\n', /invalid port/],
    ['PROXY TCP4 10.0.0.1 10.0.0.2 1000\r\n', /Invalid PROXY line/],
    ['PROXY UDP4 10.0.0.1 10.0.0.2 1000 80\r\n', /unknown protocol/],
    [`PROXY TCP4 ${'1'.repeat(120)}\r\n`, /longer than 107 bytes/],
  ];
  for (const [line, reason] of invalid) {
    it(`refuses ${JSON.stringify(line.slice(0, 48))}`, () => {
      const parsed = parseProxyHeader(Buffer.from(line));
      assert.equal(parsed.kind, 'invalid');
      assert.match((parsed as { reason: string }).reason, reason);
    });
  }
  it('refuses a line that reaches 107 bytes without its CRLF rather than waiting for more', () => {
    assert.equal(parseProxyHeader(Buffer.from(`PROXY TCP4 ${'9'.repeat(100)}`)).kind, 'invalid');
  });
});

describe('PROXY v2', () => {
  it('reads a TCP over IPv4 client; the header length counts the address block', () => {
    const header = v2(1, 0x11, ipv4Addresses([203, 0, 113, 7], [10, 0, 0, 1], 40000, 443));
    assert.deepEqual(parseProxyHeader(Buffer.concat([header, Buffer.from('GET / HTTP/1.1\r\n')])), {
      kind: 'header',
      length: 28,
      client: { address: '203.0.113.7', port: 40000, family: 'IPv4' },
    });
  });
  it('reads a TCP over IPv6 client in its short form, and skips TLVs after the addresses', () => {
    const addresses = Buffer.alloc(36 + 7);
    Buffer.from('20010db8000000000000000000000001', 'hex').copy(addresses, 0);
    addresses.writeUInt16BE(8443, 32);
    addresses.writeUInt16BE(443, 34);
    Buffer.from([0x04, 0x00, 0x04, 0x61, 0x62, 0x63, 0x64]).copy(addresses, 36); // a TLV the parser does not read
    assert.deepEqual(parseProxyHeader(v2(1, 0x21, addresses)), {
      kind: 'header',
      length: 16 + 43,
      client: { address: '2001:db8::1', port: 8443, family: 'IPv6' },
    });
  });
  it('LOCAL (the proxy’s own health check), UNSPEC and unix sockets keep the socket’s peer', () => {
    assert.deepEqual(parseProxyHeader(v2(0, 0x11, ipv4Addresses([1, 2, 3, 4], [5, 6, 7, 8], 1, 2))), { kind: 'header', length: 28 });
    assert.deepEqual(parseProxyHeader(v2(1, 0x00, Buffer.alloc(0))), { kind: 'header', length: 16 });
    assert.deepEqual(parseProxyHeader(v2(1, 0x31, Buffer.alloc(216))), { kind: 'header', length: 232 });
  });
  it('waits for the fixed part and then for the whole address block', () => {
    const header = v2(1, 0x11, ipv4Addresses([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    for (const n of [1, 12, 15, 16, 27]) assert.equal(parseProxyHeader(header.subarray(0, n)).kind, 'partial', `after ${n} bytes`);
  });
  it('refuses another version, an unknown command and truncated addresses', () => {
    const header = v2(1, 0x11, ipv4Addresses([1, 2, 3, 4], [5, 6, 7, 8], 1, 2));
    const version1 = Buffer.from(header);
    version1[12] = 0x11;
    assert.match((parseProxyHeader(version1) as { reason: string }).reason, /unsupported version 1/);
    const command2 = Buffer.from(header);
    command2[12] = 0x22;
    assert.match((parseProxyHeader(command2) as { reason: string }).reason, /unknown command 2/);
    assert.match((parseProxyHeader(v2(1, 0x11, Buffer.alloc(8))) as { reason: string }).reason, /IPv4 addresses truncated/);
    assert.match((parseProxyHeader(v2(1, 0x21, Buffer.alloc(20))) as { reason: string }).reason, /IPv6 addresses truncated/);
  });
});
