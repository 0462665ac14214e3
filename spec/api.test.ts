/**
 * The programmatic API (docs/api.md): the runnable example works as documented, and the options and
 * events it shows do what they say.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, example, fixture, withServer } from './helpers/servers.js';
import { until } from './helpers/wait.js';
import {
  createLogger,
  serve,
  type ActorInfo,
  type ActorStatsEntry,
  type BindAddress,
  type CloseOptions,
  type HeaderMap,
  type HttpCompat,
  type Logger,
  type LogLevel,
  type ServerEvents,
} from '../source/index.js';

// Every type the API takes or gives back is exported: this compiles only if they are.
export type PublicTypes = [ActorInfo, ActorStatsEntry, BindAddress, CloseOptions, HeaderMap, HttpCompat, Logger, LogLevel, ServerEvents];

describe('programmatic API', () => {
  it('examples/embed.js runs: serve, events, resize, stats, reload, close', () => {
    const run = spawnSync(process.execPath, [example('embed.js')], { cwd: ROOT, encoding: 'utf8', timeout: 60_000 });
    assert.equal(run.status, 0, run.stderr);
    const out = run.stdout;
    assert.match(out, /^serving at http:\/\/127\.0\.0\.1:\d+: Hello, World!$/m);
    assert.match(out, /^actor 3 \(generation 1\) started$/m, 'resize(3) starts a third actor');
    assert.match(out, /^resized: 3 actors, 1 requests served so far$/m);
    assert.match(out, /^reloaded: generation 2, actors 4:ready 5:ready 6:ready$/m);
    assert.equal((out.match(/\(generation 1\) exited/g) ?? []).length, 3, 'the first generation retires after the reload');
    assert.match(out, /closed\n$/);
  });

  it('await using: the server closes gracefully when its block ends', async () => {
    let url: string;
    {
      await using server = await serve({ app: fixture('identify.js'), bind: ['127.0.0.1:0'], workers: 1, logger: createLogger('critical') });
      url = server.urls[0];
      assert.equal((await fetch(url)).status, 200);
    }
    await assert.rejects(fetch(url), 'nothing listens once the block has ended');
  });

  it("actorEnv sets the actors' process.env, and a reload can change it", async () => {
    await withServer({ app: fixture('process-info.js'), workers: 1, actorEnv: { GREETING: 'from actorEnv' } }, async ({ server, url }) => {
      const read = async () => ((await (await fetch(url)).json()) as { greeting: string | null }).greeting;
      assert.equal(await read(), 'from actorEnv');
      assert.equal(process.env.GREETING, undefined, 'the main thread is untouched');
      await server.reload({ actorEnv: { GREETING: 'reloaded' } });
      assert.equal(await read(), 'reloaded');
    });
  });

  it('emits actor-start for each actor and actor-crash when one dies', async () => {
    await withServer({ app: path.join(ROOT, 'spec/fixtures/crashy.js'), workers: 2 }, async ({ server, url }) => {
      const started: number[] = [];
      const crashed: number[] = [];
      server.on('actor-start', ({ id }) => started.push(id));
      server.on('actor-crash', ({ id }) => crashed.push(id));
      await fetch(`${url}/crash`).catch(() => undefined);
      await until(() => started.length > 0, 'a replacement actor', 5000);
      assert.equal(crashed.length, 1);
      assert.deepEqual(started, [3], 'the replacement is actor 3');
    });
  });
});
