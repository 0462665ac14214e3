/**
 * A mutation fuzzer for the request path. It takes the valid requests of gunicorn's corpus,
 * mutates their bytes (flip, insert CR/LF/NUL/space/colon/digits, delete, duplicate a slice, truncate,
 * split into trickled writes) and sends each over a raw socket. It asserts:
 * - every connection ends with a response or a close, within a deadline (nothing hangs);
 * - the server never crashes: no actor dies, the first generation serves throughout;
 * - nothing leaks: afterwards the actor holds no connection and no request in flight, and its heap after a
 *   second round is within a few MB of the first (a leak per request would grow it).
 * The run is bounded in CI (FUZZ_ITERATIONS, default 300 per strategy; FUZZ_SEED picks the sequence).
 * A longer run: `FUZZ_ITERATIONS=20000 node --test dist/spec/fuzz.test.js` (docs/performance.md).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, startEchoServer, strategies } from './helpers/servers.js';
import { until } from './helpers/wait.js';
import { mutate, random, sendAndHalfClose, type Ending } from './helpers/mutations.js';
import type { GrainbowsServer, ServeOptions } from '../source/index.js';

const ITERATIONS = Number(process.env.FUZZ_ITERATIONS ?? 300);
const SEED = Number(process.env.FUZZ_SEED ?? 20261125);
const DEADLINE_MS = 5000;

const corpus = (
  JSON.parse(readFileSync(path.resolve(ROOT, 'spec/fixtures/conformance/gunicorn-requests.json'), 'utf8')) as Array<{
    valid: boolean;
    raw_base64: string;
    name: string;
  }>
)
  .filter((entry) => entry.valid && !entry.name.startsWith('valid/pp_'))
  .map((entry) => Buffer.from(entry.raw_base64, 'base64'));

/** Node's parser alone (the default), and with every leniency of actors/request-normalizer.ts in front of it. */
const PARSER_MODES: Array<{ label: string; options: Partial<ServeOptions> }> = [
  { label: 'node parser', options: {} },
  {
    label: 'every leniency',
    options: { httpCompat: 'gunicorn', permitObsoleteFolding: true, stripHeaderSpaces: true, permitUnconventionalHttpMethod: true, casefoldHttpMethod: true },
  },
];

for (const strategy of await strategies())
  for (const mode of PARSER_MODES) {
    describe(`mutation fuzzer (${strategy}, ${mode.label}, ${ITERATIONS} requests, seed ${SEED})`, () => {
      let server: GrainbowsServer;
      let port: number;
      const crashes: string[] = [];
      before(async () => {
        ({ server, port } = await startEchoServer(strategy, { keepAlive: 2, ...mode.options }));
        server.on('actor-crash', ({ id }, error) => crashes.push(`actor ${id}: ${error?.message}`));
      });
      after(() => server.close({ graceful: false }));

      const round = async (next: () => number, count: number) => {
        const endings: Record<Ending, number> = { response: 0, closed: 0, hung: 0 };
        const hung: string[] = [];
        // A few at a time, so one slow case does not serialise the run.
        for (let i = 0; i < count; i += 8) {
          const batch = Array.from({ length: Math.min(8, count - i) }, () => mutate(corpus[Math.floor(next() * corpus.length)], next));
          const results = await Promise.all(batch.map((bytes) => sendAndHalfClose(port, bytes, next, DEADLINE_MS)));
          results.forEach((ending, j) => {
            endings[ending]++;
            if (ending === 'hung' && hung.length < 3) hung.push(JSON.stringify(batch[j].toString('latin1')));
          });
        }
        return { endings, hung };
      };

      /** The actor once its connections have ended (or as it is after 4 s: the assertions below then say what is left). */
      const settled = async () =>
        until(
          async () => {
            const [actor] = (await server.stats()).actors;
            return actor.connections === 0 && actor.requestsInFlight === 0 && actor;
          },
          'the actor to settle',
          4000,
          50,
        ).catch(async () => (await server.stats()).actors[0]);

      it('every mutated request ends in a response or a close; no crash, no leak', async (t) => {
        const next = random(SEED);
        const first = await round(next, Math.ceil(ITERATIONS / 2));
        const afterFirst = await settled();
        const second = await round(next, Math.floor(ITERATIONS / 2));
        const afterSecond = await settled();
        const total = {
          response: first.endings.response + second.endings.response,
          closed: first.endings.closed + second.endings.closed,
          hung: first.endings.hung + second.endings.hung,
        };
        assert.equal(total.hung, 0, `connections left hanging: ${[...first.hung, ...second.hung].join('\n')}`);
        assert.deepEqual(crashes, []);
        assert.equal(afterSecond.generation, 1, 'the first actor served throughout');
        assert.equal(afterSecond.connections, 0, 'no connection left in the actor');
        assert.equal(afterSecond.requestsInFlight, 0, 'no request left in flight');
        assert.equal(total.response + total.closed, ITERATIONS, 'each mutated request ended in a response or a close, once');
        assert.ok(total.response > 0, 'some mutations are still requests the echo app answers');
        const growthMb = (afterSecond.heapUsed - afterFirst.heapUsed) / 2 ** 20;
        t.diagnostic(
          `${total.response} answered, ${total.closed} closed without an answer, heap ${(afterFirst.heapUsed / 2 ** 20).toFixed(1)} → ${(afterSecond.heapUsed / 2 ** 20).toFixed(1)} MB`,
        );
        assert.ok(growthMb < 8, `the actor's heap grew ${growthMb.toFixed(1)} MB between rounds`);
      });
    });
  }
