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
import { SERVE_SETTINGS, findSetting } from '../source/config/settings.js';
import {
  DEFAULTS,
  GrainbowsError,
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

describe('serve() options are the settings table', () => {
  const logger = createLogger('critical');
  const app = fixture('echo.js');
  const refusal = async (options: Record<string, unknown>): Promise<string> => {
    const error = await serve({ app, bind: ['127.0.0.1:0'], logger, ...options }).then(
      async (server) => {
        await server.close();
        return undefined;
      },
      (failure: unknown) => failure,
    );
    assert.ok(error instanceof GrainbowsError, `refused: ${JSON.stringify(options)}`);
    assert.equal(error.code, 'E_USAGE');
    return error.message;
  };

  it('a bad value is refused as the command line refuses it, naming the option', async () => {
    assert.equal(await refusal({ workers: 0 }), "workers must be a whole number ≥ 1, not '0'");
    assert.equal(await refusal({ keepAlive: 2.5 }), "keepAlive must be a whole number ≥ 0, not '2.5'");
    assert.equal(await refusal({ handoff: 'teleport' }), "handoff must be one of auto, relay, transfer, not 'teleport'");
    assert.match(await refusal({ forwardedAllowIps: '10.0.0.0/99' }), /^forwardedAllowIps: /);
    assert.match(await refusal({ umask: 0o1777 }), /^umask must be a mode/);
    assert.equal(await refusal({ headerTimeout: 30, bodyTimeout: 10 }), 'body timeout (10 s) must be at least the header timeout (30 s), or 0');
  });

  it("DEFAULTS are the table's defaults, except the two that change the whole process", () => {
    for (const name of SERVE_SETTINGS) {
      const expected = name === 'heapGrowingPercent' ? 0 : name === 'memoryReducer' ? true : findSetting(name)?.default;
      assert.deepEqual(DEFAULTS[name], expected, name);
    }
  });
});
