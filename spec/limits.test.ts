/**
 * Deadlines and body limits for slow and hostile clients: --header-timeout and --body-timeout
 * answer 408 and close, --body-min-rate answers 408 to an upload the client trickles (never to an app that reads
 * slowly), --limit-request-body answers 413 for declared and chunked bodies alike.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { fixture, startCli, strategies, withServer } from './helpers/servers.js';
import { exchange } from './helpers/wire.js';

/** Opens a connection, writes `bytes`, and reports what came back and when the server closed it. */
function trickle(port: number, bytes: string, timeoutMs: number): Promise<{ received: string; closedAfterMs: number | null }> {
  return new Promise((resolve) => {
    const started = Date.now();
    let received = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write(bytes));
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', () => {});
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ received, closedAfterMs: null });
    }, timeoutMs);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ received, closedAfterMs: Date.now() - started });
    });
  });
}

/**
 * Sends a complete GET, waits for its response, then writes `bytes` on the same connection; reports all
 * that came back and when the server closed the connection (from the second write).
 */
function afterFirstResponse(port: number, bytes: string, timeoutMs: number): Promise<{ received: string; closedAfterMs: number | null }> {
  return new Promise((resolve) => {
    let started = 0;
    let received = '';
    const socket = net.connect(port, '127.0.0.1', () => socket.write('GET /a HTTP/1.1\r\nHost: x\r\n\r\n'));
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
      if (started === 0 && /\r\n\r\n/.test(received)) {
        started = Date.now();
        if (bytes !== '') socket.write(bytes);
        setTimeout(() => {
          socket.destroy();
          resolve({ received, closedAfterMs: null });
        }, timeoutMs);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => resolve({ received, closedAfterMs: started === 0 ? null : Date.now() - started }));
  });
}

/**
 * Sends a POST head declaring `total` body bytes, then `step` bytes every `everyMs` until done (Connection:
 * close), and reports what came back and when the server closed the connection.
 */
function dribble(
  port: number,
  path: string,
  total: number,
  step: number,
  everyMs: number,
  timeoutMs: number,
): Promise<{ received: string; closedAfterMs: number | null }> {
  return new Promise((resolve) => {
    const started = Date.now();
    let received = '';
    let sent = 0;
    const socket = net.connect(port, '127.0.0.1', () =>
      socket.write(`POST ${path} HTTP/1.1\r\nHost: x\r\nContent-Length: ${total}\r\nConnection: close\r\n\r\n`),
    );
    const ticker = setInterval(() => {
      if (sent >= total || socket.destroyed) return clearInterval(ticker);
      const size = Math.min(step, total - sent);
      sent += size;
      socket.write('x'.repeat(size));
    }, everyMs);
    socket.on('data', (chunk) => (received += chunk.toString('latin1')));
    socket.on('error', () => {});
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    socket.on('close', () => {
      clearInterval(ticker);
      clearTimeout(timer);
      resolve({ received, closedAfterMs: received === '' && Date.now() - started >= timeoutMs ? null : Date.now() - started });
    });
  });
}

const chunked = (sizes: number[]) => `${sizes.map((size) => `${size.toString(16)}\r\n${'x'.repeat(size)}\r\n`).join('')}0\r\n\r\n`;

for (const strategy of await strategies()) {
  describe(`deadlines and body limits (${strategy})`, () => {
    it('--header-timeout: a head that never ends gets 408 and a close; others are served meanwhile', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, workers: 1, headerTimeout: 1 }, async ({ port, url }) => {
        const slow = trickle(port, 'GET / HTTP/1.1\r\nHost: x\r\nX-Slow: ', 6000);
        await sleep(300);
        assert.equal((await fetch(`${url}/other`)).status, 200, 'another client is served while one trickles');
        const { received, closedAfterMs } = await slow;
        assert.match(received, /^HTTP\/1\.1 408 /);
        assert.ok(closedAfterMs !== null && closedAfterMs >= 900 && closedAfterMs < 3500, `closed after ${closedAfterMs} ms`);
      }));

    it('--body-timeout: a body that stops arriving gets 408 and a close', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, workers: 1, headerTimeout: 1, bodyTimeout: 2 }, async ({ port }) => {
        const { received, closedAfterMs } = await trickle(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc', 8000);
        assert.match(received, /^HTTP\/1\.1 408 /);
        assert.ok(closedAfterMs !== null && closedAfterMs >= 1900 && closedAfterMs < 4500, `closed after ${closedAfterMs} ms`);
      }));

    it('--header-timeout on a kept-alive connection: a later head that never ends gets 408 and a close, sent after a response or pipelined behind a request', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, workers: 1, headerTimeout: 1 }, async ({ port }) => {
        const separate = afterFirstResponse(port, 'GET /b HTTP/1.1\r\nHost: x\r\nX-Slow: ', 8000);
        const pipelined = trickle(port, 'GET /a HTTP/1.1\r\nHost: x\r\n\r\nGET /b HTTP/1.1\r\nHost: x\r\nX-Slow: ', 8000);
        for (const { received, closedAfterMs } of [await separate, await pipelined]) {
          assert.match(received, /^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 408 /, received);
          assert.ok(closedAfterMs !== null && closedAfterMs >= 900 && closedAfterMs < 3500, `closed after ${closedAfterMs} ms`);
        }
      }));

    it('--body-timeout on a kept-alive connection: a later body that stops arriving gets 408 and a close', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, workers: 1, headerTimeout: 1, bodyTimeout: 2 }, async ({ port }) => {
        const { received, closedAfterMs } = await afterFirstResponse(port, 'POST /b HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc', 8000);
        assert.match(received, /^HTTP\/1\.1 200 [\s\S]*HTTP\/1\.1 408 /, received);
        assert.ok(closedAfterMs !== null && closedAfterMs >= 1900 && closedAfterMs < 4500, `closed after ${closedAfterMs} ms`);
      }));

    it('--header-timeout: a kept-alive connection idle between requests, and a WebSocket sending for longer, are not cut by it', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, workers: 1, headerTimeout: 1 }, async ({ port }) => {
        const idle = await afterFirstResponse(port, '', 2600);
        assert.equal(idle.closedAfterMs, null, 'an idle keep-alive connection stays open past the header deadline');
        assert.match(idle.received, /^HTTP\/1\.1 200 /);
        const cli = await startCli([
          '-b',
          '127.0.0.1:0',
          '-w',
          '1',
          '--header-timeout',
          '1',
          '--graceful-timeout',
          '1',
          '--handoff',
          strategy,
          'examples/websocket.js',
        ]);
        try {
          const ws = new WebSocket(`${cli.url.replace('http', 'ws')}/chat`);
          await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
          let echoed = 0;
          ws.on('message', () => echoed++);
          for (let i = 0; i < 6; i++) {
            ws.send(`message ${i}`);
            await sleep(500);
          }
          assert.equal(ws.readyState, WebSocket.OPEN, 'the WebSocket outlived the header deadline');
          assert.equal(echoed, 6);
          ws.close();
        } finally {
          await cli.stop();
        }
      }));

    it('--body-min-rate: uploads trickled below the rate get 408 and a close, 41 expiring at once too; a steady one and an app that reads late are not cut', () =>
      withServer({ app: fixture('behaviours.js'), handoff: strategy, workers: 1, bodyMinRate: 100 }, async ({ port, logs }) => {
        // 20 bytes/s, far below 100: judged at the end of the first 10 s window.
        const slow = dribble(port, '/echo', 100_000, 10, 500, 16_000);
        // 40 more opened together expire in the same check: answered a few per event-loop turn, every one.
        const crowd = Array.from({ length: 40 }, () => dribble(port, '/echo', 100_000, 10, 500, 16_000));
        // 150 bytes/s for 13 s: above the rate through more than one window, so it is served whole.
        const steady = dribble(port, '/echo', 1950, 75, 500, 20_000);
        // The client sends at once but the app reads nothing for 12 s: the app is slow, not the client.
        const lateReader = exchange(
          port,
          `POST /read-later?gap=12000 HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\nConnection: close\r\n\r\n${'z'.repeat(200_000)}`,
          { timeoutMs: 20_000 },
        );
        const [cut, served, read] = await Promise.all([slow, steady, lateReader]);
        assert.match(cut.received, /^HTTP\/1\.1 408 /);
        assert.ok(cut.closedAfterMs !== null && cut.closedAfterMs >= 9900 && cut.closedAfterMs < 13_500, `closed after ${cut.closedAfterMs} ms`);
        assert.match(served.received, /^HTTP\/1\.1 200 /);
        assert.ok(served.received.endsWith('x'.repeat(1950)), `the steady upload is echoed whole: ...${served.received.slice(-80)}`);
        assert.equal(read.responses[0]?.status, 200);
        assert.equal(read.responses[0].body.toString(), '200000');
        const crowdCut = await Promise.all(crowd);
        assert.deepEqual(
          crowdCut.map((each) => /^HTTP\/1\.1 408 /.test(each.received) && each.closedAfterMs !== null && each.closedAfterMs < 13_500),
          crowd.map(() => true),
        );
        // One log line per check for all it expired ("... and 40 more"), not a line per upload.
        const logged = logs
          .map((line) => /slow upload \(\d+\.\d bytes\/s < --body-min-rate 100\): POST \/echo(?: and (\d+) more)? answered 408/.exec(line))
          .filter((match) => match !== null)
          .reduce((sum, match) => sum + 1 + Number(match[1] ?? 0), 0);
        assert.equal(logged, 41, logs.join('\n'));
      }));

    it('--limit-request-body: 413 for a declared length over it (without 100 Continue), and for a chunked body as it crosses it', () =>
      withServer({ app: fixture('echo.js'), handoff: strategy, workers: 1, limitRequestBody: 1000 }, async ({ port, server }) => {
        const declared = await exchange(port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2000\r\n\r\n${'x'.repeat(2000)}`, { timeoutMs: 3000 });
        assert.equal(declared.responses[0]?.status, 413);
        assert.ok(declared.closed);
        const expecting = await exchange(port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 5000\r\nExpect: 100-continue\r\n\r\n', { timeoutMs: 3000 });
        assert.doesNotMatch(expecting.raw.toString('latin1'), /100 Continue/);
        assert.equal(expecting.responses[0]?.status, 413);
        const over = await exchange(port, `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n${chunked([600, 600, 600])}`, { timeoutMs: 3000 });
        assert.equal(over.responses[0]?.status, 413);
        assert.ok(over.closed);
        const under = await exchange(port, `POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n${chunked([500, 400])}`, {
          timeoutMs: 3000,
        });
        assert.equal(under.responses[0]?.status, 200);
        assert.equal(Buffer.from((JSON.parse(under.responses[0].body.toString()) as { body: string }).body, 'base64').length, 900);
        const exact = await exchange(port, `POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\nConnection: close\r\n\r\n${'y'.repeat(1000)}`, {
          timeoutMs: 3000,
        });
        assert.equal(exact.responses[0]?.status, 200, 'exactly the limit is allowed');
        await sleep(100);
        const [actor] = (await server.stats()).actors;
        assert.equal(actor.requestsInFlight, 0);
        assert.equal(actor.generation, 1, 'no crash');
      }));
  });
}
