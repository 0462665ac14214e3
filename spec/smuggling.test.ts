/**
 * Request smuggling and malformed framing, beyond gunicorn's corpus: each request below must be
 * refused with a 4xx/5xx status and the connection closed, and a request smuggled behind it must never be
 * answered. Raw bytes over `net`, under every hand-off strategy.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startEchoServer, strategies } from './helpers/servers.js';
import type { GrainbowsServer, ServeOptions } from '../source/index.js';
import { exchange } from './helpers/wire.js';
import { until } from './helpers/wait.js';

const SMUGGLED = 'GET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n';
const head = (lines: string[]) => `${lines.join('\r\n')}\r\n\r\n`;

interface Case {
  name: string;
  bytes: string;
  /** Acceptable statuses (default 400). */
  status?: number[];
}

const CASES: Case[] = [
  // Content-Length and Transfer-Encoding together, and their variants.
  {
    name: 'Content-Length with Transfer-Encoding: chunked',
    bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: 4', 'Transfer-Encoding: chunked'])}0\r\n\r\n`,
  },
  {
    name: 'Transfer-Encoding: chunked with Content-Length after it',
    bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked', 'Content-Length: 4'])}0\r\n\r\n`,
  },
  { name: 'two Content-Length headers that differ', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: 3', 'Content-Length: 4'])}abcd` },
  { name: 'two equal Content-Length headers', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: 4', 'Content-Length: 4'])}abcd` },
  { name: 'a Content-Length list', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: 4, 4'])}abcd` },
  { name: 'a signed Content-Length', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: +4'])}abcd` },
  { name: 'a negative Content-Length', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: -1'])}` },
  { name: 'a hexadecimal Content-Length', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: 0x4'])}abcd` },
  { name: 'an absurd Content-Length', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: 99999999999999999999999'])}abcd`, status: [400, 413] },
  { name: 'Content-Length with a space inside', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: 1 0'])}abcd` },
  { name: 'chunked not last', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked, gzip'])}0\r\n\r\n`, status: [400, 501] },
  { name: 'chunked twice', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked, chunked'])}0\r\n\r\n`, status: [400, 501] },
  {
    name: 'chunked in two Transfer-Encoding headers',
    bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked', 'Transfer-Encoding: chunked'])}0\r\n\r\n`,
    status: [400, 501],
  },
  { name: 'an unknown transfer coding', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: xchunked'])}0\r\n\r\n`, status: [400, 501] },
  {
    name: 'Transfer-Encoding with a vertical tab',
    bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding:\x0bchunked'])}0\r\n\r\n`,
    status: [400, 501],
  },
  {
    name: 'Transfer-Encoding with a space before the colon',
    bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding : chunked', 'Content-Length: 5'])}0\r\n\r\n`,
  },
  { name: 'Transfer-Encoding on HTTP/1.0', bytes: `${head(['POST / HTTP/1.0', 'Host: x', 'Transfer-Encoding: chunked'])}0\r\n\r\n` },
  // Chunk framing.
  { name: 'a chunk size that is not hex', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}zz\r\nabc\r\n0\r\n\r\n` },
  { name: 'a negative chunk size', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}-3\r\nabc\r\n0\r\n\r\n` },
  { name: 'a chunk size with 0x', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}0x3\r\nabc\r\n0\r\n\r\n` },
  {
    name: 'an overflowing chunk size',
    bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}ffffffffffffffffff\r\nabc\r\n0\r\n\r\n`,
    status: [400, 413],
  },
  { name: 'a chunk longer than its size', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}3\r\nabcdef\r\n0\r\n\r\n` },
  { name: 'a chunk without its CRLF', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}3\r\nabc0\r\n\r\n` },
  { name: 'a chunk size ended by a bare LF', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}3\nabc\r\n0\r\n\r\n` },
  { name: 'a chunk extension with a bare CR', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}3;a=b\rc\r\nabc\r\n0\r\n\r\n` },
  { name: 'a chunk extension with a control byte', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}3;a=\x01\r\nabc\r\n0\r\n\r\n` },
  { name: 'a last chunk with a bare LF', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}3\r\nabc\r\n0\n\r\n` },
  // Trailer fields that would change the request after it was routed (RFC 9110 §6.5.1).
  {
    name: 'Content-Length in the trailers',
    bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}3\r\nabc\r\n0\r\nContent-Length: 50\r\n\r\n`,
  },
  {
    name: 'a conditional (If-Match) in the trailers',
    bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Transfer-Encoding: chunked'])}3\r\nabc\r\n0\r\nIf-Match: "x"\r\n\r\n`,
  },
  // The head.
  { name: 'a header line ended by a bare LF', bytes: 'GET / HTTP/1.1\r\nHost: x\nX-A: b\r\n\r\n' },
  { name: 'a header line ended by a bare CR', bytes: 'GET / HTTP/1.1\r\nHost: x\rX-A: b\r\n\r\n' },
  { name: 'a request line ended by a bare CR', bytes: 'GET / HTTP/1.1\rHost: x\r\n\r\n' },
  { name: 'whitespace before the colon', bytes: head(['GET / HTTP/1.1', 'Host: x', 'X-A : b']) },
  { name: 'a header name with a space', bytes: head(['GET / HTTP/1.1', 'Host: x', 'X A: b']) },
  { name: 'obsolete line folding', bytes: head(['GET / HTTP/1.1', 'Host: x', 'X-A: b', ' c']) },
  { name: 'a line folded into Content-Length', bytes: `${head(['POST / HTTP/1.1', 'Host: x', 'Content-Length: 4', ' 4'])}abcd` },
  { name: 'a NUL in a header value', bytes: head(['GET / HTTP/1.1', 'Host: x', 'X-A: b\x00c']) },
  { name: 'a control byte in a header value', bytes: head(['GET / HTTP/1.1', 'Host: x', 'X-A: b\x07c']) },
  { name: 'a NUL in the request target', bytes: head(['GET /a\x00b HTTP/1.1', 'Host: x']) },
  { name: 'a space in the request target', bytes: head(['GET /a b HTTP/1.1', 'Host: x']) },
  { name: 'an empty header name', bytes: head(['GET / HTTP/1.1', 'Host: x', ': b']) },
  { name: 'a header without a colon', bytes: head(['GET / HTTP/1.1', 'Host: x', 'X-A b']) },
  { name: 'two Host headers', bytes: head(['GET / HTTP/1.1', 'Host: x', 'Host: y']) },
  { name: 'a Host with a space', bytes: head(['GET / HTTP/1.1', 'Host: x y']) },
  // Methods and versions.
  { name: 'a lower-case method', bytes: head(['get / HTTP/1.1', 'Host: x']), status: [400, 405, 501] },
  { name: 'a method with a control byte', bytes: head(['GE\x01T / HTTP/1.1', 'Host: x']), status: [400, 501] },
  { name: 'HTTP/2.0 in the request line', bytes: head(['GET / HTTP/2.0', 'Host: x']), status: [400, 505] },
  { name: 'HTTP/1.10', bytes: head(['GET / HTTP/1.10', 'Host: x']), status: [400, 505] },
  { name: 'a lower-case protocol name', bytes: head(['GET / http/1.1', 'Host: x']) },
  { name: 'no version (HTTP/0.9)', bytes: head(['GET /', 'Host: x']), status: [400, 505] },
  { name: 'two spaces between method and target', bytes: head(['GET  / HTTP/1.1', 'Host: x']) },
  { name: 'a tab between method and target', bytes: head(['GET\t/ HTTP/1.1', 'Host: x']) },
];

/**
 * Cases grainbows does not refuse yet, listed so the gap stays visible. (Two spaces in the request line was
 * one: Node's parser collapses them; the head gate now checks the first request line of each connection.)
 */
const NOT_YET: Record<string, string> = {};

/**
 * The suite runs with Node's parser alone (the default), behind the gunicorn-compatible framer
 * (actors/request-normalizer.ts), and with every leniency on: no rewrite may let a smuggled request through.
 */
const PARSER_MODES: Array<{ label: string; options: Partial<ServeOptions>; accepts?: string[] }> = [
  { label: 'node parser', options: {} },
  { label: '--http-compat gunicorn', options: { httpCompat: 'gunicorn' } },
  {
    label: 'every leniency',
    options: { httpCompat: 'gunicorn', permitObsoleteFolding: true, stripHeaderSpaces: true, permitUnconventionalHttpMethod: true, casefoldHttpMethod: true },
    // What these settings exist to accept: each is served, and the request after it is read where it starts.
    accepts: ['whitespace before the colon', 'obsolete line folding', 'a lower-case method'],
  },
];

for (const strategy of await strategies())
  for (const mode of PARSER_MODES) {
    describe(`smuggling and malformed framing (${strategy}, ${mode.label})`, () => {
      // One server for the suite: every case ends with its connection closed, so cases cannot leak into
      // each other; the last test checks that the actor survived them all.
      let server: GrainbowsServer;
      let port: number;
      before(async () => {
        ({ server, port } = await startEchoServer(strategy, mode.options));
      });
      after(() => server.close());

      it(`has at least 40 cases (${CASES.length})`, () => assert.ok(CASES.length >= 40));
      for (const testCase of CASES) {
        if (mode.accepts?.includes(testCase.name)) {
          it(`accepts ${testCase.name}, and frames what follows it`, async () => {
            const { responses, raw } = await exchange(port, testCase.bytes + SMUGGLED, { responses: 2, timeoutMs: 3000 });
            assert.deepEqual(
              responses.map((response) => response.status),
              [200, 200],
              raw.toString('latin1').slice(0, 300),
            );
            assert.equal((JSON.parse(responses[1].body.toString()) as { url: string }).url, '/smuggled');
          });
          continue;
        }
        it(`refuses ${testCase.name}`, { todo: NOT_YET[testCase.name] }, async () => {
          const { responses, closed, raw } = await exchange(port, testCase.bytes + SMUGGLED, { timeoutMs: 3000 });
          const allowed = testCase.status ?? [400];
          assert.ok(responses.length >= 1, `no response: ${JSON.stringify(raw.toString('latin1').slice(0, 200))}`);
          assert.ok(allowed.includes(responses[0].status), `status ${responses[0].status}, expected ${allowed.join(' or ')}`);
          assert.equal(responses.length, 1, 'the smuggled request is never answered');
          assert.ok(closed, 'the connection is closed');
        });
      }
      it('serves a valid request afterwards, from the same actor, with no connection left behind', async () => {
        const { responses } = await exchange(port, 'GET /after HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 3000 });
        assert.equal(responses[0]?.status, 200);
        const stats = await server.stats();
        assert.equal(stats.actors.length, 1);
        assert.equal(stats.actors[0].generation, 1);
        await until(async () => (await server.stats()).actors[0].connections === 0, 'no connection left on the actor', 1000).catch(() => {});
        assert.equal((await server.stats()).actors[0].connections, 0);
      });
    });
  }
