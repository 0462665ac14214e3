/**
 * Every app kind grainbows detects, each with the real framework, under every hand-off strategy.
 */
import assert from 'node:assert/strict';
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
