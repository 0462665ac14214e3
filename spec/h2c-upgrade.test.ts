/**
 * Without grainbows: which requests actors/h2c-upgrade.ts switches to HTTP/2, and that the stream 1 it writes
 * for them is what Node's own HTTP/2 server (nghttp2) reads as a client's first stream, a header block longer
 * than a frame included. The switch itself is tested end to end in spec/http2.test.ts.
 */
import assert from 'node:assert/strict';
import http from 'node:http';
import http2 from 'node:http2';
import net from 'node:net';
import { describe, it } from 'node:test';
import { afterClientPreface, asksForH2c, firstStreamFrames } from '../actors/h2c-upgrade.js';
import { HTTP2_PREFACE } from '../shared/wire.js';

/** A request as Node's parser would build it from `rawHeaders`. */
function request(rawHeaders: string[], { method = 'GET', url = '/', httpVersion = '1.1' } = {}): http.IncomingMessage {
  const req = new http.IncomingMessage(new net.Socket());
  Object.assign(req, { method, url, httpVersion });
  req.rawHeaders = rawHeaders;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i].toLowerCase();
    const known = req.headers[name];
    req.headers[name] = known === undefined ? rawHeaders[i + 1] : `${String(known)}, ${rawHeaders[i + 1]}`;
  }
  return req;
}

const ASKING = ['Host', 'example.test', 'Connection', 'Upgrade, HTTP2-Settings', 'Upgrade', 'h2c', 'HTTP2-Settings', 'AAMAAABkAAQAoAAAAAIAAAAA'];

describe('which requests switch to HTTP/2 (Upgrade: h2c)', () => {
  it('switches a body-less HTTP/1.1 request naming h2c, with HTTP2-Settings named in Connection', () => {
    assert.equal(asksForH2c(request(ASKING)), true);
    assert.equal(asksForH2c(request([...ASKING, 'Content-Length', '0'])), true);
    assert.equal(asksForH2c(request(ASKING.map((v) => (v === 'h2c' ? 'websocket, H2C' : v)))), true);
  });

  const refused: Array<[string, http.IncomingMessage]> = [
    ['a body by length', request([...ASKING, 'Content-Length', '3'])],
    ['a chunked body', request([...ASKING, 'Transfer-Encoding', 'chunked'])],
    ['HTTP/1.0', request(ASKING, { httpVersion: '1.0' })],
    ['another protocol', request(ASKING.map((v) => (v === 'h2c' ? 'websocket' : v)))],
    ['no HTTP2-Settings', request(ASKING.slice(0, 6))],
    ['HTTP2-Settings not in Connection', request(ASKING.map((v) => (v === 'Upgrade, HTTP2-Settings' ? 'Upgrade' : v)))],
    ['HTTP2-Settings that are not base64url', request(ASKING.map((v) => (v.startsWith('AAMA') ? 'a b' : v)))],
    ['HTTP2-Settings of a length no SETTINGS payload has', request(ASKING.map((v) => (v.startsWith('AAMA') ? 'AAMA' : v)))],
    ['two HTTP2-Settings fields', request([...ASKING, 'HTTP2-Settings', 'AAMAAABk'])],
  ];
  for (const [what, req] of refused) it(`answers over HTTP/1.1 a request with ${what}`, () => assert.equal(asksForH2c(req), false));
});

describe('stream 1 as the client would have sent it', () => {
  it('finds where the client preface and first SETTINGS frame end, once they are all here', () => {
    const settings = Buffer.from([0, 0, 6, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]);
    const bytes = Buffer.concat([HTTP2_PREFACE, settings, Buffer.from('next')]);
    assert.equal(afterClientPreface(bytes), HTTP2_PREFACE.byteLength + settings.byteLength);
    assert.equal(afterClientPreface(bytes.subarray(0, HTTP2_PREFACE.byteLength + 10)), -1);
  });

  it("is read by Node's HTTP/2 server as the first stream, every field intact, 40 KB of fields across CONTINUATION frames", async () => {
    const long = 'v'.repeat(10_000);
    const req = request(
      [...ASKING, 'Cookie', 'a=1', 'Cookie', 'b=2', 'X-Long-1', long, 'X-Long-2', long, 'X-Long-3', long, 'X-Long-4', long, 'TE', 'trailers'],
      {
        url: '/path?q=1',
      },
    );
    const frames = firstStreamFrames(req);
    assert.ok(frames.byteLength > 40_000);
    assert.equal(frames[3], 0x1, 'HEADERS first');
    assert.equal(frames[9 + frames.readUIntBE(0, 3) + 3], 0x9, 'then CONTINUATION');

    const h2 = http2.createServer({ settings: { maxHeaderListSize: 100_000 }, maxHeaderListPairs: 200 } as http2.ServerOptions);
    const seen = new Promise<{ id: number; headers: http2.IncomingHttpHeaders; ended: boolean }>((resolve) =>
      h2.on('stream', (stream, headers) => {
        resolve({ id: stream.id ?? 0, headers, ended: stream.readableEnded || stream.endAfterHeaders });
        stream.respond({ ':status': 200 });
        stream.end();
      }),
    );
    const listener = net.createServer((socket) => h2.emit('connection', socket)).listen(0, '127.0.0.1');
    await new Promise((resolve) => listener.once('listening', resolve));
    const client = net.connect((listener.address() as net.AddressInfo).port, '127.0.0.1');
    client.on('data', () => {});
    const emptySettings = Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0]);
    client.write(Buffer.concat([HTTP2_PREFACE, emptySettings, frames]));
    try {
      const { id, headers, ended } = await seen;
      assert.equal(id, 1);
      assert.equal(ended, true, 'END_STREAM: no body follows');
      assert.deepEqual(
        [headers[':method'], headers[':scheme'], headers[':path'], headers[':authority'], headers.cookie, headers.te, headers['x-long-4']],
        ['GET', 'http', '/path?q=1', 'example.test', 'a=1; b=2', 'trailers', long],
      );
      for (const name of ['host', 'connection', 'upgrade', 'http2-settings']) assert.equal(headers[name], undefined, name);
    } finally {
      client.destroy();
      listener.close();
      h2.close();
    }
  });
});
