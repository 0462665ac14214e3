/**
 * Every app kind grainbows detects, each with the real framework, under every hand-off strategy.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { fixture, startCli, strategies, withServer } from './helpers/servers.js';
import { exchange } from './helpers/wire.js';

const KINDS: Array<{ name: string; app: string; hello: string; json?: boolean }> = [
  { name: 'plain (req, res) listener', app: 'http-server-app.js', hello: 'hello from http.Server' },
  { name: 'Express 5', app: 'express-app.js', hello: 'hello from express', json: true },
  { name: 'Connect', app: 'connect-app.js', hello: 'hello from connect' },
  { name: 'Koa', app: 'koa-app.js', hello: 'hello from koa' },
  { name: 'Fastify', app: 'fastify-app.js', hello: 'hello from fastify', json: true },
  { name: 'Hono', app: 'hono-app.js', hello: 'hello from hono', json: true },
  { name: 'itty-router', app: 'itty-app.js', hello: 'hello from itty-router' },
  { name: 'Fetch function (named export)', app: 'fetch-function.js:handler', hello: 'hello from fetch' },
  { name: 'object with fetch()', app: 'fetch-function.js:object', hello: 'hello from fetch' },
];

for (const strategy of await strategies()) {
  describe(`app kinds (${strategy})`, () => {
    for (const kind of KINDS) {
      it(`serves a ${kind.name} app`, () =>
        withServer({ app: fixture(kind.app), handoff: strategy }, async ({ url }) => {
          const response = await fetch(`${url}/hello`);
          assert.equal(response.status, 200);
          assert.equal(await response.text(), kind.hello);
          if (kind.json) {
            const posted = await fetch(`${url}/json`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ a: [1, 2] }) });
            assert.deepEqual(await posted.json(), { got: { a: [1, 2] } });
          }
        }));
    }

    it('streams a Hono response and a Fetch response whose body is an async iterable', () =>
      withServer({ app: fixture('hono-app.js'), handoff: strategy }, async ({ url }) => {
        assert.equal(await (await fetch(`${url}/stream`)).text(), 'part 0\npart 1\npart 2\n');
      }).then(() =>
        withServer({ app: fixture('fetch-function.js:handler'), handoff: strategy }, async ({ url }) => {
          const response = await fetch(`${url}/iterable`);
          assert.equal(response.headers.get('transfer-encoding'), 'chunked');
          assert.equal(await response.text(), '3\n2\n1\n');
          const echoed = await fetch(`${url}/echo`, { method: 'PUT', body: 'round trip' });
          assert.equal(echoed.headers.get('x-method'), 'PUT');
          assert.equal(await echoed.text(), 'round trip');
        }),
      ));

    it('answers 500 to the request whose handler throws, and keeps serving', () =>
      withServer({ app: fixture('throws.js'), handoff: strategy, workers: 1 }, async ({ url, port, logs }) => {
        for (const path of ['/sync', '/async']) {
          const response = await fetch(`${url}${path}`);
          assert.equal(response.status, 500, path);
          assert.equal(await response.text(), 'Internal Server Error\n');
        }
        // Once the head is under way a 500 is impossible: the connection is cut so the client never takes
        // what it got for a whole response.
        const midway = await exchange(port, 'GET /midway HTTP/1.1\r\nHost: a\r\n\r\n', { timeoutMs: 2000 });
        assert.ok(midway.closed, 'connection closed');
        assert.doesNotMatch(midway.raw.toString(), /500/);
        assert.equal(midway.responses.length, 0, 'no complete response');
        assert.equal(await (await fetch(`${url}/fine`)).text(), 'fine');
        assert.ok(
          logs.some((line) => line.includes('boom (sync)')),
          'the error is logged',
        );
      }));
  });
}

describe('socket.io with several actors', () => {
  const WARNING = /socket\.io keeps its clients and rooms in each of the 2 actors: .*createAdapter\(\)/;

  it("warns once at start when socket.io runs on its own in-memory adapter; not when the app gives it grainbows' adapter", async () => {
    const unshared = await startCli(['-b', '127.0.0.1:0', '-w', '2', fixture('socket-io-unshared.js')]);
    try {
      await unshared.waitFor(WARNING);
      await unshared.waitFor(/Booted actor 2/);
      assert.equal(
        unshared
          .output()
          .split('\n')
          .filter((line) => WARNING.test(line)).length,
        1,
        'one line, not one per actor',
      );
    } finally {
      await unshared.stop();
    }
    const shared = await startCli(['-b', '127.0.0.1:0', '-w', '2', fixture('frameworks/socket-io.js')]);
    try {
      await shared.waitFor(/Booted actor 2/);
      assert.doesNotMatch(shared.output(), /socket\.io keeps its clients/);
    } finally {
      await shared.stop();
    }
    const single = await startCli(['-b', '127.0.0.1:0', '-w', '1', fixture('socket-io-unshared.js')]);
    try {
      assert.doesNotMatch(single.output(), /socket\.io keeps its clients/, 'one actor holds every client');
    } finally {
      await single.stop();
    }
  });
});

/** Sends `head`, then (once `when` matches what came back) `body`; resolves with all that came back by the close or `ms`. */
function converse(port: number, head: string, when?: RegExp, body = ''): Promise<string> {
  return new Promise((resolve) => {
    let received = '';
    let sent = false;
    const socket = net.connect(port, '127.0.0.1', () => socket.write(head));
    const timer = setTimeout(() => socket.destroy(), 3000);
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => {
      received += chunk;
      if (when && !sent && when.test(received)) {
        sent = true;
        socket.end(body);
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(received);
    });
  });
}

for (const strategy of await strategies()) {
  describe(`Expect handled by the app's own server (${strategy})`, () => {
    const upload = (path: string, length: number, expect = '100-continue') =>
      `POST ${path} HTTP/1.1\r\nHost: x\r\nExpect: ${expect}\r\nContent-Length: ${length}\r\nConnection: close\r\n\r\n`;

    it("an exported http.Server's 'checkContinue' and 'checkExpectation' listeners answer, counted as requests", () =>
      withServer({ app: fixture('expectations.js'), handoff: strategy }, async ({ port, server }) => {
        const forbidden = await converse(port, upload('/forbidden', 20 * 2 ** 20));
        assert.match(forbidden, /^HTTP\/1\.1 403 /, 'refused before the body');
        assert.doesNotMatch(forbidden, /100 Continue/);
        const accepted = await converse(port, upload('/upload', 5), /100 Continue\r\n\r\n/, 'hello');
        assert.match(accepted, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 [\s\S]*received 5$/);
        const other = await converse(port, upload('/other', 0, 'something-else'));
        assert.match(other, /^HTTP\/1\.1 200 [\s\S]*expected something-else\r\n/);
        const stats = await server.stats();
        assert.equal(stats.responses.byStatusClass['2xx'], 2);
        assert.equal(stats.responses.byStatusClass['4xx'], 1);
      }));

    it('hapi (server.listener) answers 404 before the body for a path it has no route for, and invites the upload of one it has', () =>
      withServer({ app: fixture('frameworks/hapi.js'), handoff: strategy }, async ({ port }) => {
        const unknown = await converse(port, upload('/nowhere', 20 * 2 ** 20));
        assert.match(unknown, /^HTTP\/1\.1 404 /);
        assert.doesNotMatch(unknown, /100 Continue/);
        const known = await converse(port, upload('/upload', 7), /100 Continue\r\n\r\n/, 'payload');
        assert.match(known, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 [\s\S]*\{"size":7\}$/);
      }));

    it('an app without such listeners: 100 Continue as before, and 417 for another expectation', () =>
      withServer({ app: fixture('frameworks/http-server-ws.js'), handoff: strategy }, async ({ port }) => {
        const echoed = await converse(port, upload('/echo', 2), /100 Continue\r\n\r\n/, 'hi');
        assert.match(echoed, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 [\s\S]*hi$/);
        assert.match(await converse(port, upload('/echo', 0, 'something-else')), /^HTTP\/1\.1 417 /);
      }));
  });
}
