/**
 * Without a server: the head gate (shared/head-gate.ts), which holds a new connection until its first
 * request head is whole. Sockets are EventEmitters standing in for net.Socket: the test plays the client's
 * bytes and reads what the gate answers. spec/deferred.test.ts runs the same over real connections.
 */
import assert from 'node:assert/strict';
import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import { describe, it } from 'node:test';
import { GATE_HEAD_LIMIT, HeadGate, type GatedConnection, type GateSettings } from '../../shared/head-gate.js';
import { until } from '../helpers/wait.js';

class FakeSocket extends EventEmitter {
  answer = '';
  ended = false;
  destroyed = false;
  paused = false;
  constructor(readonly remoteAddress = '127.0.0.1') {
    super();
  }
  send(text: string | Buffer): void {
    this.emit('data', Buffer.from(text));
  }
  pause(): this {
    this.paused = true;
    return this;
  }
  resume(): this {
    this.paused = false;
    return this;
  }
  end(data?: string): this {
    if (data) this.answer += data;
    this.ended = true;
    return this;
  }
  destroy(): this {
    this.destroyed = true;
    return this;
  }
}

function gate(settings: Partial<GateSettings> = {}): { gate: HeadGate; arrivals: GatedConnection[]; admit: (remote?: string) => FakeSocket } {
  const arrivals: GatedConnection[] = [];
  const headGate = new HeadGate({ headerTimeoutMs: 20_000, proxyFrom: null, ...settings }, (arrival) => arrivals.push(arrival));
  return {
    gate: headGate,
    arrivals,
    admit: (remote) => {
      const socket = new FakeSocket(remote);
      headGate.admit(socket as unknown as Socket);
      return socket;
    },
  };
}

const HEAD = 'GET /a HTTP/1.1\r\nHost: x\r\n\r\n';

describe('the head gate', () => {
  it('holds a connection until its head is whole, however it is cut, then hands it on paused with every byte', () => {
    const { gate: g, arrivals, admit } = gate();
    const socket = admit();
    for (const char of HEAD.slice(0, -1)) {
      socket.send(char);
      assert.equal(arrivals.length, 0, `handed on before the blank line (at ${JSON.stringify(char)})`);
    }
    socket.send(`${HEAD.slice(-1)}POST-BODY`);
    assert.equal(arrivals.length, 1);
    assert.equal(arrivals[0].head.toString(), `${HEAD}POST-BODY`);
    assert.equal(socket.paused, true, 'paused: the next reader takes the bytes from here');
    assert.equal(g.size, 0);
    g.close();
  });
  it('accepts bare LF line ends as Node’s parser does', () => {
    const { gate: g, arrivals, admit } = gate();
    admit().send('GET / HTTP/1.1\nHost: x\n\n');
    assert.equal(arrivals.length, 1);
    g.close();
  });
  it('answers 400 at once to a request line with two spaces (a smuggling vector Node lets pass)', () => {
    const { gate: g, arrivals, admit } = gate();
    const socket = admit();
    socket.send('GET  / HTTP/1.1\r\n');
    assert.equal(arrivals.length, 0);
    assert.match(socket.answer, /^HTTP\/1\.1 400 Bad Request\r\n[\s\S]*\r\n\r\nBad Request: malformed request line\n$/);
    assert.equal(socket.ended, true);
    g.close();
  });
  it('hands on at once bytes Node’s parser refuses anyway (a NUL), and a head past the gate’s limit', () => {
    const { gate: g, arrivals, admit } = gate();
    admit().send('GET / HTTP/1.1\r\nX: a\0b');
    assert.equal(arrivals.length, 1, 'a NUL');
    const big = admit();
    big.send('GET / HTTP/1.1\r\n');
    for (let sent = 0; sent <= GATE_HEAD_LIMIT; sent += 1000) big.send(`X-Pad: ${'a'.repeat(990)}\r\n`);
    assert.equal(arrivals.length, 2, 'more than GATE_HEAD_LIMIT bytes without an end');
    g.close();
  });
  it('with releaseAfterRequestLine, hands on once the request line is checked', () => {
    const { gate: g, arrivals, admit } = gate({ releaseAfterRequestLine: true });
    admit().send('GET / HTTP/1.1\r\nHost');
    assert.equal(arrivals.length, 1);
    assert.equal(arrivals[0].head.toString(), 'GET / HTTP/1.1\r\nHost');
    g.close();
  });
  it('a client that half-closes mid-head is handed on as ended; one that sent nothing is closed', () => {
    const { gate: g, arrivals, admit } = gate();
    const partial = admit();
    partial.send('GET / HT');
    partial.emit('end');
    assert.deepEqual([arrivals.length, arrivals[0].ended], [1, true]);
    const silent = admit();
    silent.emit('end');
    assert.equal(arrivals.length, 1);
    assert.equal(silent.ended, true);
    g.close();
  });
  it('reads a PROXY header from a trusted peer: the head starts after it, the client is the proxy’s', () => {
    const { gate: g, arrivals, admit } = gate({ proxyFrom: (address) => address === '10.0.0.1' });
    admit('10.0.0.1').send(`PROXY TCP4 203.0.113.9 10.0.0.1 40000 80\r\n${HEAD}`);
    assert.equal(arrivals.length, 1);
    assert.equal(arrivals[0].head.toString(), HEAD);
    assert.deepEqual(arrivals[0].client, { address: '203.0.113.9', port: 40000, family: 'IPv4' });
    const plain = admit('10.0.0.1');
    plain.send(HEAD);
    assert.equal(arrivals[1].client, undefined, 'no header from a trusted peer: a plain connection');
    g.close();
  });
  it('answers 403 to a PROXY header from anybody else, and 400 to a broken one', () => {
    const { gate: g, arrivals, admit } = gate({ proxyFrom: (address) => address === '10.0.0.1' });
    const stranger = admit('192.0.2.7');
    stranger.send(`PROXY TCP4 203.0.113.9 10.0.0.1 40000 80\r\n${HEAD}`);
    assert.match(stranger.answer, /^HTTP\/1\.1 403 Forbidden[\s\S]*PROXY header from 192\.0\.2\.7, which is not in --proxy-allow-from\n$/);
    const broken = admit('10.0.0.1');
    broken.send('PROXY TCP4 not-an-ip 10.0.0.1 1 2\r\n');
    assert.match(broken.answer, /^HTTP\/1\.1 400 Bad Request[\s\S]*bad address/);
    assert.equal(arrivals.length, 0);
    g.close();
  });
  it('answers 408 to a head that has not arrived within the header timeout', async () => {
    const { gate: g, arrivals, admit } = gate({ headerTimeoutMs: 100 });
    const slow = admit();
    slow.send('GET / HTTP/1.1\r\nHost:');
    await until(() => slow.ended, 'the 408', 3000);
    assert.match(slow.answer, /^HTTP\/1\.1 408 Request Timeout[\s\S]*no complete request head within 0\.1 s\n$/);
    assert.equal(arrivals.length, 0);
    g.close();
  });
});
