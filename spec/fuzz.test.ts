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
import net from 'node:net';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ROOT, startEchoServer, strategies } from './helpers/servers.js';
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

/** mulberry32: a small seeded generator, so a failing run can be replayed with its seed. */
function random(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const INSERTS = [
  '\r',
  '\n',
  '\r\n',
  '\0',
  ' ',
  ':',
  '\t',
  '0',
  'f',
  ';',
  ',',
  '-',
  'chunked',
  'Content-Length: 5\r\n',
  'Transfer-Encoding: chunked\r\n',
  '\x7f',
  '\xff',
];

function mutate(input: Buffer, next: () => number): Buffer {
  let bytes = Buffer.from(input);
  const pick = (n: number) => Math.floor(next() * n);
  const rounds = 1 + pick(4);
  for (let r = 0; r < rounds && bytes.length > 0; r++) {
    const at = pick(bytes.length);
    switch (pick(6)) {
      case 0: // flip a byte
        bytes[at] = pick(256);
        break;
      case 1: {
        const insert = Buffer.from(INSERTS[pick(INSERTS.length)], 'latin1');
        bytes = Buffer.concat([bytes.subarray(0, at), insert, bytes.subarray(at)]);
        break;
      }
      case 2: // delete a run
        bytes = Buffer.concat([bytes.subarray(0, at), bytes.subarray(Math.min(bytes.length, at + 1 + pick(8)))]);
        break;
      case 3: {
        const end = Math.min(bytes.length, at + 1 + pick(40));
        bytes = Buffer.concat([bytes.subarray(0, end), bytes.subarray(at, end), bytes.subarray(end)]);
        break;
      }
      case 4: // truncate
        bytes = bytes.subarray(0, at);
        break;
      default: // grow a number
        bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from('9'.repeat(1 + pick(30))), bytes.subarray(at)]);
    }
  }
  return bytes;
}

type Ending = 'response' | 'closed' | 'hung';

/** Sends the bytes (in 1–3 writes), half-closes, and reports how the connection ended. */
function send(port: number, bytes: Buffer, next: () => number): Promise<Ending> {
  return new Promise((resolve) => {
    const socket = net.connect(port, '127.0.0.1');
    let received = '';
    let settled = false;
    const finish = (ending: Ending) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve(ending);
    };
    const timer = setTimeout(() => finish(received.startsWith('HTTP/1.') ? 'response' : 'hung'), DEADLINE_MS);
    socket.on('data', (chunk) => {
      received += chunk.toString('latin1');
    });
    socket.on('close', () => finish(received.startsWith('HTTP/1.') ? 'response' : 'closed'));
    socket.on('error', () => {});
    socket.on('connect', async () => {
      const parts = 1 + Math.floor(next() * 3);
      const size = Math.ceil(bytes.length / parts);
      for (let i = 0; i < bytes.length; i += size) {
        socket.write(bytes.subarray(i, i + size));
        await new Promise((r) => setTimeout(r, 1));
      }
      // Half-close: a request cut short must still end (Node answers or closes at the client's FIN).
      socket.end();
    });
  });
}

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
          const results = await Promise.all(batch.map((bytes) => send(port, bytes, next)));
          results.forEach((ending, j) => {
            endings[ending]++;
            if (ending === 'hung' && hung.length < 3) hung.push(JSON.stringify(batch[j].toString('latin1')));
          });
        }
        return { endings, hung };
      };

      const settled = async () => {
        for (let i = 0; i < 80; i++) {
          const [actor] = (await server.stats()).actors;
          if (actor.connections === 0 && actor.requestsInFlight === 0) return actor;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        return (await server.stats()).actors[0];
      };

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
        assert.ok(total.response > 0 && total.closed >= 0);
        const growthMb = (afterSecond.heapUsed - afterFirst.heapUsed) / 2 ** 20;
        t.diagnostic(
          `${total.response} answered, ${total.closed} closed without an answer, heap ${(afterFirst.heapUsed / 2 ** 20).toFixed(1)} → ${(afterSecond.heapUsed / 2 ** 20).toFixed(1)} MB`,
        );
        assert.ok(growthMb < 8, `the actor's heap grew ${growthMb.toFixed(1)} MB between rounds`);
      });
    });
  }
