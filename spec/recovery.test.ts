/**
 * An actor that dies is replaced at once; requests on the other actor are untouched.
 * Hangs (--timeout) are in lifecycle.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, strategies, withServer } from './helpers/servers.js';
import { exchange } from './helpers/wire.js';
import { until } from './helpers/wait.js';

for (const strategy of await strategies()) {
  describe(`actor crash recovery (${strategy})`, () => {
    const causes = {
      crash: 'an uncaught exception',
      rejection: 'an unhandled rejection',
      exit: 'process.exit',
      oom: 'running out of memory under resourceLimits',
    } as const;
    for (const how of Object.keys(causes) as Array<keyof typeof causes>) {
      it(`replaces an actor killed by ${causes[how]}; the other actor's requests complete`, () =>
        withServer(
          { app: fixture('crashy.js'), handoff: strategy, workers: 2, resourceLimits: { maxOldGenerationSizeMb: 48, maxYoungGenerationSizeMb: 8 } },
          async ({ server, url, port, logs }) => {
            const exits: number[] = [];
            server.on('actor-exit', (actor) => exits.push(actor.id));
            // Occupy both actors with slow requests, then kill one of them.
            const slow = [
              exchange(port, 'GET /?sleep=800 HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 5000 }),
              exchange(port, 'GET /?sleep=800 HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 5000 }),
            ];
            await sleep(100);
            const killed = await exchange(port, `GET /${how} HTTP/1.1\r\nHost: x\r\n\r\n`, { timeoutMs: 5000 });
            if (strategy === 'relay') assert.equal(killed.responses[0]?.status, 502, "main answers the dead actor's waiting request 502");
            else assert.ok(killed.closed, "the dead actor's connection closes with its thread, not left hanging");
            const results = await Promise.all(slow);
            const answered = results.filter((r) => r.responses[0]?.status === 200).length;
            assert.ok(answered >= 1, 'the other actor finished its request');
            const diedAt = Date.now();
            await until(async () => (await server.stats()).actors.length === 2, 'a replacement actor', 3000, 20).catch(() => {});
            const replacedAfter = Date.now() - diedAt;
            assert.equal((await server.stats()).actors.length, 2, 'a replacement actor is serving');
            assert.ok(replacedAfter <= 1000, `the replacement served ${replacedAfter} ms after the crash`);
            assert.equal(exits.length, 1);
            const after = await Promise.all(Array.from({ length: 4 }, () => fetch(url, { headers: { connection: 'close' } }).then((r) => r.status)));
            assert.deepEqual(after, [200, 200, 200, 200]);
            assert.ok(
              logs.some((line) => line.includes('exited unexpectedly')),
              'the crash is logged',
            );
          },
        ));
    }
  });
}
