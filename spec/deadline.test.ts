/**
 * --request-timeout: 504 for a request whose app has not started answering in time; the app is told
 * (Fetch: request.signal aborts; listener: the request closes); late answers do not crash the actor;
 * responses already streaming are not cut.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, runCli, strategies, withServer } from './helpers/servers.js';
import { exchange } from './helpers/wire.js';

for (const strategy of await strategies()) {
  describe(`--request-timeout (${strategy})`, () => {
    it('answers 504 with Connection: close to a listener app that never answers, and the app sees its request close', async () => {
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, workers: 1, requestTimeout: 1 }, async ({ port, url, logs }) => {
        const started = Date.now();
        const { responses, closed } = await exchange(port, 'GET /never HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 5000 });
        const waited = Date.now() - started;
        assert.equal(responses[0]?.status, 504);
        assert.equal(responses[0].headers.connection, 'close');
        assert.ok(closed, 'the connection closes after the 504');
        assert.ok(waited >= 950 && waited < 3000, `answered after ${waited} ms`);
        assert.equal(await (await fetch(`${url}/never-closed`)).text(), '1');
        assert.ok(
          logs.some((line) => /request timeout \(1 s\): GET \/never answered 504/.test(line)),
          logs.join('\n'),
        );
      });
    });

    it("survives the app's late answer: the actor keeps serving and nothing crashes", async () => {
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, workers: 1, requestTimeout: 1 }, async ({ server, url }) => {
        let crashes = 0;
        server.on('actor-crash', () => crashes++);
        const late = await fetch(`${url}/late?gap=1500`);
        assert.equal(late.status, 504);
        await sleep(800); // the app answers now, into a response that is already over
        assert.equal(await (await fetch(`${url}/`)).text(), 'ok');
        assert.equal(crashes, 0);
        const [actor] = (await server.stats()).actors;
        assert.equal(actor.generation, 1, 'still the first actor');
      });
    });

    it("aborts a Fetch app's request.signal with a TimeoutError", async () => {
      await withServer({ app: `${fixture('fetch-function.js')}:handler`, handoff: strategy, workers: 1, requestTimeout: 1 }, async ({ url }) => {
        const response = await fetch(`${url}/wait`);
        assert.equal(response.status, 504);
        assert.equal(await response.text(), 'Gateway Timeout\n');
        await sleep(100);
        const aborts = (await (await fetch(`${url}/aborts`)).json()) as string[];
        assert.equal(aborts.length, 1);
        assert.match(aborts[0], /request timeout: no response within 1 s/);
      });
    });

    it('does not cut a response that is already streaming, and is off by default', async () => {
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, workers: 1, requestTimeout: 1 }, async ({ url }) => {
        const streamed = await fetch(`${url}/stream?n=4&gap=500`);
        assert.equal(streamed.status, 200);
        assert.equal(await streamed.text(), 'chunk 0\nchunk 1\nchunk 2\nchunk 3\n');
      });
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, workers: 1 }, async ({ url }) => {
        const late = await fetch(`${url}/late?gap=1200`);
        assert.equal(late.status, 200);
        assert.equal(await late.text(), 'late');
      });
    });
  });
}

describe('--request-timeout at the CLI', () => {
  it('takes effect from the command line and refuses a bad value', async () => {
    const bad = await runCli(['-b', '127.0.0.1:0', '--request-timeout', 'soon', fixture('behaviours.js')]);
    assert.equal(bad.status, 2);
    assert.match(bad.stderr.trim(), /^grainbows: --request-timeout must be a whole number ≥ 0, not 'soon'$/);
    const printed = await runCli(['--request-timeout', '7', '--print-config', fixture('behaviours.js')]);
    assert.match(printed.stdout, /^request_timeout += 7 {2}# from command line$/m);
  });
});
