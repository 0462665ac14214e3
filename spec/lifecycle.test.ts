/**
 * The lifecycle under load: reload, resize, recycling and graceful stop drop nothing; a hung actor is
 * replaced. Library calls and the CLI's signals drive the same code (arbiter.ts → server.ts → actor-pool.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fixture, requestsInFlight, startCli, strategies, withServer, versionedApp } from './helpers/servers.js';
import { startLoad } from './helpers/load.js';
import { until } from './helpers/wait.js';
import { exchange } from './helpers/wire.js';
import { isRefused } from './helpers/probes.js';

for (const strategy of await strategies()) {
  describe(`lifecycle under load (${strategy})`, () => {
    it('reload: 10,000 requests across it, keep-alive and new connections, 0 failed, then only the new code answers', () => {
      const { app, setVersion } = versionedApp('v1');
      return withServer({ app, handoff: strategy, workers: 2 }, async ({ server, url }) => {
        const load = startLoad(url, { concurrency: 16 });
        await load.reach(3000);
        setVersion('v2');
        await server.reload();
        const afterReload = load.count;
        await load.reach(Math.max(10_000, afterReload + 3000));
        const result = await load.stop();
        assert.equal(result.failed, 0, `failures: ${result.failures.join('; ')}`);
        assert.ok(result.ok >= 10_000);
        assert.ok((result.bodies.get('v1') ?? 0) > 0 && (result.bodies.get('v2') ?? 0) > 0, 'both generations answered');
        assert.deepEqual(new Set(result.lastBodies), new Set(['v2']), 'after the reload only the new code answers');
        const stats = await server.stats();
        assert.equal(stats.generation, 2);
        assert.deepEqual(
          stats.actors.map((actor) => [actor.generation, actor.state]),
          [
            [2, 'ready'],
            [2, 'ready'],
          ],
        );
      });
    });

    it('reload to an app that no longer loads keeps the old generation serving', () => {
      const { app, dir } = versionedApp('v1');
      return withServer({ app, handoff: strategy, workers: 2 }, async ({ server, url }) => {
        writeFileSync(path.join(dir, 'app.js'), 'export default function (req, res) { res.end("broken" }\n');
        await assert.rejects(server.reload(), /SyntaxError|failed/);
        assert.equal(await (await fetch(url)).text(), 'v1');
        assert.equal((await server.stats()).generation, 1);
      });
    });

    it('resize up and down under load: 10,000 requests across it, 0 failed; removed actors drain first', () =>
      withServer({ app: versionedApp('v1').app, handoff: strategy, workers: 2 }, async ({ server, url }) => {
        const load = startLoad(url, { concurrency: 12 });
        await load.reach(3000);
        await server.resize(3);
        assert.equal((await server.stats()).actors.length, 3);
        await load.reach(load.count + 3000);
        await server.resize(1);
        assert.equal((await server.stats()).actors.length, 1);
        await load.reach(Math.max(10_000, load.count + 3000));
        const result = await load.stop();
        assert.equal(result.failed, 0, `failures: ${result.failures.join('; ')}`);
        assert.ok(result.ok >= 10_000);
      }));

    it('--max-requests with jitter recycles actors under load: 10,000 requests, 0 failed', () =>
      withServer({ app: versionedApp('v1').app, handoff: strategy, workers: 2, maxRequests: 1000, maxRequestsJitter: 100 }, async ({ server, url, logs }) => {
        const started: number[] = [];
        server.on('actor-start', (actor) => started.push(actor.id));
        const load = startLoad(url, { concurrency: 12 });
        await load.reach(10_000);
        const result = await load.stop();
        assert.equal(result.failed, 0, `failures: ${result.failures.join('; ')}`);
        // 10,000 requests at most 1,100 per actor: at least 10000/1100 - 2 = 7 replacements.
        assert.ok(started.length >= 7, `${started.length} replacements started`);
        assert.ok(logs.some((line) => line.includes('reached its max requests')));
        // A recycle under way when the load stopped finishes by itself: two actors serve again.
        await until(async () => (await server.stats()).actors.filter((actor) => actor.state === 'ready').length === 2, 'two actors ready', 3000);
      }));

    it('close() while 200 requests sleep: all 200 are answered, new connections are refused', () =>
      withServer({ app: versionedApp('v1').app, handoff: strategy, workers: 2 }, async ({ server, port }) => {
        const sleepers = Array.from({ length: 200 }, () => exchange(port, 'GET /?sleep=1500 HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 8000 }));
        await until(
          async () => (await server.stats()).actors.reduce((sum, actor) => sum + actor.requestsInFlight, 0) === 200,
          'all 200 requests in flight',
          5000,
        );
        const closing = server.close();
        await until(() => isRefused(port), 'a new connection refused once closing began', 2000);
        const answers = await Promise.all(sleepers);
        assert.equal(answers.filter((answer) => answer.responses[0]?.status === 200).length, 200);
        assert.ok(
          answers.every((answer) => answer.responses[0].headers.connection === 'close'),
          'answers during the drain close their connection',
        );
        await closing;
      }));

    it('a hung actor is terminated after --timeout and replaced; the other actor is untouched', () =>
      withServer({ app: fixture('crashy.js'), handoff: strategy, workers: 2, timeout: 1 }, async ({ server, port, logs }) => {
        const others = Array.from({ length: 10 }, () => exchange(port, 'GET /?sleep=300 HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 6000 }));
        const hungAt = Date.now();
        const hung = exchange(port, 'GET /hang HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 6000 });
        const answer = await hung;
        if (strategy === 'relay') assert.equal(answer.responses[0]?.status, 503, 'main answers the hung request 503');
        else assert.ok(answer.closed, "the hung request's connection closes with its thread");
        await until(async () => (await server.stats()).actors.length === 2, 'a replacement actor', 5000, 20).catch(() => {});
        const replacedAfter = Date.now() - hungAt;
        assert.ok(replacedAfter <= 2000, `a replacement served ${replacedAfter} ms after the hang (timeout 1 s + 1 s)`);
        // Requests that landed on the hung actor before it hung are answered 503 or closed; every other one 200.
        const results = await Promise.all(others);
        const notice = logs.map((line) => /actor \d+ \(generation 1\) has not turned its event loop for .* serving (\d+) connections/.exec(line)).find(Boolean);
        assert.ok(notice, 'the log names the actor and what it held');
        const othersOnHungActor = Number(notice[1]) - 1;
        assert.equal(results.filter((r) => r.responses[0]?.status === 200).length, others.length - othersOnHungActor, 'the other actor answered all it held');
        assert.ok(results.every((r) => r.responses[0]?.status === 200 || r.responses[0]?.status === 503 || r.closed));
      }));

    it('close() while an actor hangs and --timeout is off: stats() leaves it out, and the graceful timeout bounds the close', { timeout: 30_000 }, () =>
      withServer({ app: fixture('crashy.js'), handoff: strategy, workers: 1, gracefulTimeout: 1 }, async ({ server, port }) => {
        const hung = exchange(port, 'GET /hang HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 20_000 });
        // An actor whose event loop is stuck never answers a control call: stats() stops waiting after 2 s.
        await until(async () => (await server.stats()).actors.length === 0, 'stats() without the hung actor');
        const closingAt = Date.now();
        await server.close();
        const took = Date.now() - closingAt;
        assert.ok(took < 8000, `close() took ${took} ms (graceful timeout 1 s, then 2 s for the actor to stop)`);
        const answer = await hung;
        if (strategy === 'relay') assert.equal(answer.responses[0]?.status, 502, "main answers the stopped actor's request 502");
        else assert.ok(answer.closed, "the hung request's connection closes with its thread");
      }),
    );
  });
}

describe('signals (CLI)', () => {
  it('HUP reloads the code under load with 0 failures; a broken app on HUP leaves the old generation serving', async () => {
    const { app, setVersion, dir } = versionedApp('v1');
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '2', app]);
    try {
      const load = startLoad(cli.url, { concurrency: 8 });
      await load.reach(1000);
      setVersion('v2');
      cli.child.kill('SIGHUP');
      await cli.waitFor(/Reloaded: generation 2/);
      await load.reach(load.count + 1000);
      writeFileSync(path.join(dir, 'app.js'), 'export default 42;\n');
      cli.child.kill('SIGHUP');
      await cli.waitFor(/the new generation did not start, the old one keeps serving/);
      await load.reach(load.count + 1000);
      const result = await load.stop();
      assert.equal(result.failed, 0, `failures: ${result.failures.join('; ')}`);
      assert.deepEqual(new Set(result.lastBodies), new Set(['v2']));
    } finally {
      const exit = await cli.stop('SIGTERM');
      assert.equal(exit.status, 0);
    }
  });

  it('TTIN adds an actor, TTOU removes one', async () => {
    const { app } = versionedApp('v1');
    const running = await startCli(['-b', '127.0.0.1:0', '-w', '1', app]);
    try {
      running.child.kill('SIGTTIN');
      await running.waitFor(/Booted actor 2 \(generation 1/);
      const threads = new Set<string>();
      for (let i = 0; i < 20; i++) threads.add(await (await fetch(`${running.url}/thread`, { headers: { connection: 'close' } })).text());
      assert.equal(threads.size, 2, 'two actors answer');
      running.child.kill('SIGTTOU');
      await running.waitFor(/Retiring actor 1/);
      // Once actor 1 has drained, ten requests in a row all reach the one actor left.
      await until(async () => {
        const after = new Set<string>();
        for (let i = 0; i < 10; i++) after.add(await (await fetch(`${running.url}/thread`, { headers: { connection: 'close' } })).text());
        return after.size === 1;
      }, 'one actor answering');
    } finally {
      await running.stop('SIGTERM');
    }
  });

  it('TERM while 200 requests sleep 2 s: all 200 complete, new connections are refused, exit 0', async () => {
    const { app } = versionedApp('v1');
    const pidfile = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-lifecycle-')), 'server.pid');
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '2', '-p', pidfile, app]);
    const port = Number(new URL(cli.url).port);
    const sleepers = Array.from({ length: 200 }, () => exchange(port, 'GET /?sleep=2000 HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 10_000 }));
    await until(async () => (await requestsInFlight(pidfile)) === 200, 'all 200 requests in flight', 5000);
    const exited = cli.stop('SIGTERM');
    await cli.waitFor(/Handling signal: term/);
    await until(() => isRefused(port), 'new connections refused after TERM', 2000);
    const answers = await Promise.all(sleepers);
    assert.equal(answers.filter((answer) => answer.responses[0]?.status === 200 && answer.responses[0].body.toString() === 'v1').length, 200);
    const exit = await exited;
    assert.equal(exit.status, 0);
    assert.match(exit.stderr, /Shutting down: Master/);
  });

  it('INT stops at once, without waiting for sleeping requests', async () => {
    const { app } = versionedApp('v1');
    const pidfile = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-lifecycle-')), 'server.pid');
    const cli = await startCli(['-b', '127.0.0.1:0', '-p', pidfile, app]);
    const port = Number(new URL(cli.url).port);
    const sleeper = exchange(port, 'GET /?sleep=5000 HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 8000 });
    await until(async () => (await requestsInFlight(pidfile)) === 1, 'the request in flight', 5000);
    const started = Date.now();
    const exit = await cli.stop('SIGINT');
    assert.ok(Date.now() - started < 3000, 'quick stop');
    assert.equal(exit.status, 0);
    const answer = await sleeper;
    assert.ok((answer.closed && answer.responses.length === 0) || answer.responses[0]?.status === 502, 'the sleeping request is cut, not answered 200');
  });
});
