/**
 * The deferred hand-off: a connection costs no actor slot until its request head has arrived, and
 * `--worker-connections` counts requests in flight, not connections. Plus the PROXY protocol, which the
 * same gate reads. Under every hand-off strategy this runtime has.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, strategies, withServer } from './helpers/servers.js';
import { exchange, parseResponses } from './helpers/wire.js';
import { until } from './helpers/wait.js';

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

/** Sends `request` on an open socket and resolves with the first whole response. */
function ask(socket: net.Socket, request: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    let raw = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      raw = Buffer.concat([raw, chunk]);
      const [response] = parseResponses(raw);
      if (!response) return;
      socket.off('data', onData);
      resolve({ status: response.status, body: response.body.toString() });
    };
    socket.on('data', onData);
    socket.once('close', () => reject(new Error(`closed before a response: ${raw.toString('latin1').slice(0, 100)}`)));
    socket.write(request);
  });
}

interface Echoed {
  method: string;
  url: string;
  body: string;
  remoteAddress: string;
  remotePort: number;
}
const echoed = (body: Buffer): Echoed => JSON.parse(body.toString()) as Echoed;

for (const strategy of await strategies()) {
  describe(`deferred hand-off (${strategy})`, () => {
    it('holds silent and half-sent connections at the gate (main for relay, the actor for transfer), costing no actor slot', () =>
      withServer({ app: fixture('identify.js'), handoff: strategy, workers: 1, workerConnections: 1 }, async ({ server, port }) => {
        const silent = await Promise.all(Array.from({ length: 10 }, () => connect(port)));
        const halfSent = await Promise.all(Array.from({ length: 10 }, () => connect(port)));
        for (const socket of halfSent) socket.write('GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ');
        await until(async () => (await server.stats()).awaitingHead === 20, 'twenty connections at the gate');
        const started = Date.now();
        const response = await fetch(`http://127.0.0.1:${port}/`);
        assert.equal(response.status, 200, 'with --worker-connections 1, a normal request is still served');
        assert.ok(Date.now() - started < 1000, `served in ${Date.now() - started} ms`);
        const stats = await server.stats();
        assert.equal(stats.awaitingHead, 20);
        assert.equal(stats.queued, 0);
        assert.equal(stats.actors[0].connections, 1, 'only the finished request reached the actor');
        // Finishing a head hands the connection over and gets it answered.
        const answer = await ask(halfSent[0], 'yes\r\n\r\n');
        assert.equal(answer.status, 200);
        for (const socket of [...silent, ...halfSent]) socket.destroy();
      }));

    // Relay only: a transferred socket is Node's own, and like node:http's it stops reading while the app reads
    // nothing, so a reset shows only once the app reads again. On the relay main keeps reading under the window.
    it(
      'frees the slot and the connection of a client that resets while its upload waits for the app',
      { skip: strategy !== 'relay' && 'transfer: Node stops reading, as node:http does' },
      () =>
        withServer({ app: fixture('behaviours.js'), handoff: strategy, workers: 1, workerConnections: 1 }, async ({ server, port }) => {
          // The app reads nothing for a minute. 160 KiB of body, under one credit window, so main keeps reading
          // the socket; in the actor the parser stops taking bytes once the request's buffer is full, and on
          // the relay the connection's coroutine waits for the reader with the rest of the frames queued.
          const uploader = await connect(port);
          uploader.write('POST /read-later?gap=60000 HTTP/1.1\r\nHost: x\r\nContent-Length: 67108864\r\n\r\n');
          for (let i = 0; i < 10; i++) uploader.write(Buffer.alloc(16 * 1024, 97));
          await until(async () => (await server.stats()).actors[0].requestsInFlight === 1, 'the upload counted in flight');
          await sleep(300);
          // A reset, not a FIN: a FIN would be a half-close, whose request is still answered.
          uploader.resetAndDestroy();
          await until(async () => {
            const { actors } = await server.stats();
            return actors[0].requestsInFlight === 0 && actors[0].connections === 0;
          }, 'the slot and the connection given back');
          // With --worker-connections 1, a leaked slot would hold this request back.
          const started = Date.now();
          const response = await fetch(`http://127.0.0.1:${port}/`);
          assert.equal(response.status, 200);
          assert.ok(Date.now() - started < 1000, `served in ${Date.now() - started} ms`);
        }),
    );

    it('counts requests in flight, not idle keep-alive connections, against --worker-connections', () =>
      withServer({ app: fixture('identify.js'), handoff: strategy, workers: 1, workerConnections: 2 }, async ({ server, port }) => {
        const idle = await Promise.all(Array.from({ length: 12 }, () => connect(port)));
        for (const socket of idle) assert.equal((await ask(socket, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')).status, 200);
        let stats = await server.stats();
        assert.equal(stats.actors[0].connections, 12, 'twelve keep-alive connections live in the actor');
        assert.equal(stats.actors[0].requestsInFlight, 0);
        // Four slow requests on new connections: two run, two wait for a slot; the idle ones take no slot.
        const started = Date.now();
        const slow = Array.from({ length: 4 }, () => exchange(port, 'GET /?sleep=1000 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 5000 }));
        // All four are counted, as running or as waiting for a slot, and the twelve idle connections are not.
        // Relay: the two beyond the cap wait in main. Transfer: sockets move unread, so main sees the cap
        // only once the actor has counted two heads; the others are then in the actor or waiting in main,
        // as the race fell (see http.test.ts). Looked for while the first wave sleeps, never after it.
        await until(
          async () => {
            stats = await server.stats();
            return stats.actors[0].requestsInFlight + stats.queued === 4;
          },
          'the four new requests counted, running or waiting',
          800,
        );
        if (strategy === 'relay') assert.equal(stats.queued, 2, 'two new connections wait for a slot');
        const results = await Promise.all(slow);
        assert.deepEqual(
          results.map((r) => r.responses[0]?.status),
          [200, 200, 200, 200],
        );
        assert.ok(Date.now() - started >= 2000, 'served in two waves of two');
        // The idle connections are still good for another request each.
        const again = await Promise.all(idle.map((socket) => ask(socket, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')));
        assert.ok(again.every((r) => r.status === 200));
        const peak = JSON.parse((await exchange(port, 'GET /peak HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n')).responses[0].body.toString()) as {
          peak: number;
        };
        assert.equal(peak.peak, 2, 'the actor never ran more than two requests at once');
        for (const socket of idle) socket.destroy();
        await until(async () => (await server.stats()).actors[0].requestsInFlight === 0, 'no request left counted');
      }));

    it('keeps every byte that came with the head: a trickled head, its body and a pipelined request', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, workers: 1 }, async ({ port }) => {
        const socket = await connect(port);
        const wire = 'POST /first HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\nhelloGET /second HTTP/1.1\r\nHost: x\r\n\r\n';
        let raw = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => (raw = Buffer.concat([raw, chunk])));
        // Head in small pieces, then the body and the next request in one write with the head's end.
        const split = wire.indexOf('\r\n\r\n');
        for (let at = 0; at < split; at += 7) {
          socket.write(wire.slice(at, Math.min(at + 7, split)));
          await sleep(5);
        }
        socket.write(wire.slice(split));
        await until(() => parseResponses(raw).length === 2, 'two responses');
        const [first, second] = parseResponses(raw).map((r) => echoed(r.body));
        assert.equal(first.url, '/first');
        assert.equal(Buffer.from(first.body, 'base64').toString(), 'hello');
        assert.equal(second.url, '/second');
        socket.destroy();
      }));

    it('answers 408 to a connection that never finishes its head within --header-timeout, and never bothers an actor', () =>
      withServer({ app: fixture('identify.js'), handoff: strategy, workers: 1, headerTimeout: 1 }, async ({ server, port }) => {
        const started = Date.now();
        const result = await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n', { timeoutMs: 5000 });
        assert.equal(result.responses[0]?.status, 408);
        assert.ok(result.closed);
        const took = Date.now() - started;
        assert.ok(took >= 900 && took < 3000, `408 after ${took} ms`);
        assert.equal((await server.stats()).actors[0].requestsServed, 0);
      }));

    it('answers 408 to every one of 200 unfinished heads whose deadline passes at once (refused in slices 10 ms apart)', () =>
      withServer({ app: fixture('identify.js'), handoff: strategy, workers: 1, headerTimeout: 1 }, async ({ server, port }) => {
        // An unfinished request line keeps each connection at the gate in both strategies.
        const started = Date.now();
        const all = Array.from({ length: 200 }, () => exchange(port, 'GET /slow HTTP/1.', { timeoutMs: 6000 }));
        const results = await Promise.all(all);
        const took = Date.now() - started;
        assert.deepEqual(
          results.map((result) => `${result.responses[0]?.status} ${result.closed}`),
          results.map(() => '408 true'),
        );
        assert.ok(took >= 900 && took < 4000, `all 408s after ${took} ms`);
        assert.equal((await server.stats()).actors[0].requestsServed, 0);
      }));

    it('answers malformed bytes at once instead of waiting for a head that never ends', () =>
      withServer({ app: fixture('identify.js'), handoff: strategy, workers: 1 }, async ({ port }) => {
        for (const wire of ['GET / HTTP/1.1\r\nHo\0st: x\r\n', 'GET /\r\n', 'GET / HTTP/1.1\rHost: x']) {
          const started = Date.now();
          const result = await exchange(port, wire, { timeoutMs: 3000 });
          assert.equal(result.responses[0]?.status, 400, JSON.stringify(wire));
          assert.ok(Date.now() - started < 1000, `${JSON.stringify(wire)} answered in ${Date.now() - started} ms`);
        }
      }));
  });

  describe(`--buffer-chunked-body (${strategy})`, () => {
    const chunked = (body: string, size: number): string => {
      let wire = 'POST /upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n';
      for (let at = 0; at < body.length; at += size) {
        const piece = body.slice(at, at + size);
        wire += `${piece.length.toString(16)}\r\n${piece}\r\n`;
      }
      return `${wire}0\r\n\r\n`;
    };

    it('gives the app a chunked body whole, with a Content-Length and no Transfer-Encoding', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, bufferChunkedBody: 10_000 }, async ({ port }) => {
        const body = 'abcdefghij'.repeat(500);
        const result = await exchange(port, chunked(body, 700), { responses: 1 });
        const got = JSON.parse(result.responses[0].body.toString()) as { headers: Record<string, string>; rawHeaders: string[]; body: string };
        assert.equal(got.headers['content-length'], '5000');
        assert.equal(got.headers['transfer-encoding'], undefined);
        assert.ok(!got.rawHeaders.some((name) => name.toLowerCase() === 'transfer-encoding'));
        assert.equal(Buffer.from(got.body, 'base64').toString(), body);
      }));

    it('answers 413 to a chunked body over the limit, and leaves chunked bodies streaming when off', async () => {
      await withServer({ app: fixture('echo.js'), handoff: strategy, bufferChunkedBody: 1000 }, async ({ port }) => {
        const result = await exchange(port, chunked('z'.repeat(3000), 500), { timeoutMs: 3000 });
        assert.equal(result.responses[0]?.status, 413);
      });
      await withServer({ app: fixture('echo.js'), handoff: strategy }, async ({ port }) => {
        const result = await exchange(port, chunked('z'.repeat(3000), 500), { responses: 1 });
        const got = JSON.parse(result.responses[0].body.toString()) as { headers: Record<string, string> };
        assert.equal(got.headers['transfer-encoding'], 'chunked');
        assert.equal(got.headers['content-length'], undefined);
      });
    });
  });

  describe(`PROXY protocol (${strategy})`, () => {
    const v2 = (family: number, addresses: Buffer): Buffer => {
      const header = Buffer.alloc(16);
      Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]).copy(header);
      header[12] = 0x21; // version 2, PROXY
      header[13] = family;
      header.writeUInt16BE(addresses.length, 14);
      return Buffer.concat([header, addresses]);
    };
    const request = Buffer.from('GET /who HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');

    it('gives the app the client a v1 or v2 header names, and serves connections without one as they are', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, proxyProtocol: true }, async ({ port }) => {
        const v1 = await exchange(port, Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\n'), request]), { responses: 1 });
        assert.deepEqual([echoed(v1.responses[0].body).remoteAddress, echoed(v1.responses[0].body).remotePort], ['203.0.113.7', 40001]);
        const v1six = await exchange(port, Buffer.concat([Buffer.from('PROXY TCP6 2001:db8::7 2001:db8::1 40002 443\r\n'), request]), { responses: 1 });
        assert.equal(echoed(v1six.responses[0].body).remoteAddress, '2001:db8::7');
        const four = Buffer.from([198, 51, 100, 9, 192, 0, 2, 1, 0x9c, 0x43, 0x01, 0xbb]); // port 40003 → 443
        const v2four = await exchange(port, Buffer.concat([v2(0x11, four), request]), { responses: 1 });
        assert.deepEqual([echoed(v2four.responses[0].body).remoteAddress, echoed(v2four.responses[0].body).remotePort], ['198.51.100.9', 40003]);
        const six = Buffer.alloc(36);
        Buffer.from('20010db8000000000000000000000009', 'hex').copy(six, 0);
        Buffer.from('20010db8000000000000000000000001', 'hex').copy(six, 16);
        six.writeUInt16BE(40004, 32);
        six.writeUInt16BE(443, 34);
        const v2six = await exchange(port, Buffer.concat([v2(0x21, six), request]), { responses: 1 });
        assert.equal(echoed(v2six.responses[0].body).remoteAddress, '2001:db8::9');
        const plain = await exchange(port, request, { responses: 1 });
        assert.equal(echoed(plain.responses[0].body).remoteAddress, '127.0.0.1');
        // The header may arrive in pieces.
        const socket = await connect(port);
        let raw = Buffer.alloc(0);
        socket.on('data', (chunk: Buffer) => (raw = Buffer.concat([raw, chunk])));
        for (const piece of ['PROXY TCP4 203.0.', '113.8 192.0.2.1 4', '0005 443\r\nGET /who HTTP/1.1\r\nHost: x\r\n\r\n']) {
          socket.write(piece);
          await sleep(20);
        }
        await until(() => parseResponses(raw).length === 1, 'a response');
        assert.equal(echoed(parseResponses(raw)[0].body).remoteAddress, '203.0.113.8');
        socket.destroy();
      }));

    it('refuses a broken header (400) and one from a peer not in --proxy-allow-from (403)', async () => {
      await withServer({ app: fixture('echo.js'), handoff: strategy, proxyProtocol: true }, async ({ port }) => {
        for (const line of [
          'PROXY TCP4 192.168.0.1 192.16...\r\n',
          'PROXY TCP4 192.168.0.1 192.168.0.11 65iii 100000\r\n',
          'PROXY TCP4 not-an-ip 192.168.0.11 56324 443\r\n',
        ]) {
          const result = await exchange(port, Buffer.concat([Buffer.from(line), request]), { timeoutMs: 3000 });
          assert.equal(result.responses[0]?.status, 400, line);
          assert.ok(result.closed);
        }
      });
      await withServer({ app: fixture('echo.js'), handoff: strategy, proxyProtocol: true, proxyAllowFrom: '10.0.0.0/8' }, async ({ port }) => {
        const result = await exchange(port, Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\n'), request]), { timeoutMs: 3000 });
        assert.equal(result.responses[0]?.status, 403);
        const plain = await exchange(port, request, { responses: 1 });
        assert.equal(plain.responses[0]?.status, 200, 'an untrusted peer without a header is served');
      });
    });

    it('is off by default: a PROXY line is then a malformed request', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy }, async ({ port }) => {
        const result = await exchange(port, Buffer.concat([Buffer.from('PROXY TCP4 203.0.113.7 192.0.2.1 40001 443\r\n'), request]), { timeoutMs: 3000 });
        assert.equal(result.responses[0]?.status, 400);
      }));
  });
}
