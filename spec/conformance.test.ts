/**
 * Replays gunicorn's own parser corpus (spec/fixtures/conformance/gunicorn-requests.json; its origin and
 * licence are in the README beside it) through grainbows and an echo app, under every hand-off strategy
 * this runtime has. Contract (see the corpus README): valid cases reach the app with the same method,
 * target, version, headers, body and trailers, answered in order; invalid cases never reach the app and
 * are answered 400 (431/413/501 where fitting) and closed.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it, after } from 'node:test';
import { ROOT, fixture, strategies } from './helpers/servers.js';
import { exchange } from './helpers/wire.js';
import { serve, type GrainbowsServer, type ServeOptions } from '../source/index.js';
import { createLogger } from '../shared/log.js';
import { HTTP_COMPAT_MODES } from '../shared/settings-values.js';

interface Expected {
  method: string;
  uri: string;
  version: string;
  headers: Array<[string, string]>;
  body: string;
  trailers: Array<[string, string]>;
}
interface Case {
  name: string;
  valid: boolean;
  raw_base64: string;
  expected: Expected[] | string;
  config: Record<string, unknown>;
}
interface Echo {
  method: string;
  url: string;
  version: string;
  rawHeaders: string[];
  rawTrailers: string[];
  body: string;
}

const corpusPath = path.resolve(ROOT, 'spec/fixtures/conformance/gunicorn-requests.json');
const corpus = JSON.parse(readFileSync(corpusPath, 'utf8')) as Case[];

/**
 * Valid cases that Node's parser refuses and gunicorn's accepts by default. With `--http-compat node` (the
 * default: Node's parser alone judges requests) grainbows refuses them (400 and close), and this runner
 * checks that it does, so the default stays as strict as Node; with `--http-compat gunicorn` the framer of
 * actors/request-normalizer.ts rewrites them for Node's parser and the app sees what gunicorn's would.
 */
const REFUSED_BY_NODE: Record<string, string> = {
  'valid/009': 'Transfer-Encoding: identity with Content-Length (RFC 9112 §6.1: a server may refuse it)',
  'valid/013': "whitespace around ';' in chunk extensions (RFC 9112 §7.1.1 allows it as BWS)",
  'valid/027': 'raw non-ASCII bytes in the request target (RFC 3986 does not allow them)',
  'valid/031': 'a method Node does not know (-BLARGH; RFC 9110 allows any token)',
};

const REJECTION_STATUSES = new Set([400, 413, 414, 431, 501, 505]);

function pairs(flat: string[]): Array<[string, string]> {
  const out: Array<[string, string]> = [];
  for (let i = 0; i < flat.length; i += 2) out.push([flat[i].toUpperCase(), flat[i + 1]]);
  return out;
}

async function replay(port: number, testCase: Case, expectRefusal: boolean): Promise<void> {
  const bytes = Buffer.from(testCase.raw_base64, 'base64');
  if (testCase.name === 'valid/099') {
    // A body shorter than its Content-Length, then the client closes: the app may see an aborted body;
    // the server must stay up and keep serving.
    await exchange(port, bytes, { timeoutMs: 500, endAfterWrite: true });
    const next = await exchange(port, 'GET /after-099 HTTP/1.1\r\nHost: a\r\n\r\n', { responses: 1 });
    assert.equal(next.responses[0]?.status, 200);
    return;
  }
  if (testCase.valid && !expectRefusal) {
    const expected = testCase.expected as Expected[];
    const result = await exchange(port, bytes, { responses: expected.length, timeoutMs: 3000 });
    assert.equal(
      result.responses.length,
      expected.length,
      `expected ${expected.length} response(s), got ${result.responses.length}: ${result.raw.toString('latin1').slice(0, 300)}`,
    );
    expected.forEach((want, i) => {
      const response = result.responses[i];
      assert.equal(response.status, 200, `request ${i + 1}: ${response.status} ${response.body.toString().slice(0, 200)}`);
      const got = JSON.parse(response.body.toString()) as Echo;
      assert.equal(got.method, want.method);
      assert.equal(got.url, want.uri);
      assert.equal(`HTTP/${got.version}`, want.version);
      assert.deepEqual(
        pairs(got.rawHeaders),
        want.headers.map(([name, value]) => [name.toUpperCase(), value]),
      );
      assert.equal(got.body, want.body);
      assert.deepEqual(
        pairs(got.rawTrailers),
        want.trailers.map(([name, value]) => [name.toUpperCase(), value]),
      );
    });
  } else {
    // The client sends the bytes and then no more (gunicorn's tests end the stream there too).
    const result = await exchange(port, bytes, { timeoutMs: 3000, endAfterWrite: true });
    assert.ok(result.responses.length <= 1, `the app must not be reached, yet ${result.responses.length} responses came`);
    if (result.responses.length === 1) {
      const { status } = result.responses[0];
      assert.ok(REJECTION_STATUSES.has(status), `expected a rejection status, got ${status}: ${result.raw.toString('latin1').slice(0, 200)}`);
    }
    assert.ok(result.closed, 'the connection must be closed after a rejected request');
  }
}

/** gunicorn settings a case needs, as grainbows options (every setting the corpus uses has one). */
function optionsFor(config: Record<string, unknown>): Partial<ServeOptions> {
  const options: Partial<ServeOptions> = {};
  if (typeof config.limit_request_line === 'number') options.limitRequestLine = config.limit_request_line;
  if (typeof config.limit_request_fields === 'number') options.limitRequestFields = config.limit_request_fields;
  if (typeof config.limit_request_field_size === 'number') options.limitRequestFieldSize = config.limit_request_field_size;
  if (config.proxy_protocol !== undefined && config.proxy_protocol !== false && config.proxy_protocol !== 'off') options.proxyProtocol = true;
  if (Array.isArray(config.forwarded_allow_ips)) options.forwardedAllowIps = config.forwarded_allow_ips.join(',');
  if (config.header_map === 'drop' || config.header_map === 'refuse' || config.header_map === 'dangerous') options.headerMap = config.header_map;
  if (config.permit_obsolete_folding === true) options.permitObsoleteFolding = true;
  if (config.strip_header_spaces === true) options.stripHeaderSpaces = true;
  if (config.permit_unconventional_http_method === true) options.permitUnconventionalHttpMethod = true;
  if (config.casefold_http_method === true) options.casefoldHttpMethod = true;
  const unmapped = Object.keys(config).filter((key) => !MAPPED.has(key));
  assert.deepEqual(unmapped, [], 'a corpus setting grainbows does not map');
  return options;
}
const MAPPED = new Set([
  'limit_request_line',
  'limit_request_fields',
  'limit_request_field_size',
  'proxy_protocol',
  'forwarded_allow_ips',
  'header_map',
  'permit_obsolete_folding',
  'strip_header_spaces',
  'permit_unconventional_http_method',
  'casefold_http_method',
]);

for (const strategy of await strategies()) {
  for (const httpCompat of HTTP_COMPAT_MODES) {
    describe(`gunicorn conformance corpus (${strategy}, --http-compat ${httpCompat})`, () => {
      // One server per distinct configuration, started when a case first needs it.
      const servers = new Map<string, Promise<{ server: GrainbowsServer; port: number }>>();
      const serverFor = (config: Record<string, unknown>) => {
        const key = JSON.stringify(config);
        let started = servers.get(key);
        if (!started) {
          started = serve({
            app: fixture('echo.js'),
            bind: ['127.0.0.1:0'],
            workers: 2,
            handoff: strategy,
            httpCompat,
            logger: createLogger('critical'),
            ...optionsFor(config),
          }).then((server) => ({ server, port: Number(new URL(server.urls[0]).port) }));
          servers.set(key, started);
        }
        return started;
      };
      after(async () => {
        for (const started of servers.values()) await (await started).server.close();
      });

      for (const testCase of corpus) {
        const refusedByNode = httpCompat === 'node' ? REFUSED_BY_NODE[testCase.name] : undefined;
        const name = refusedByNode ? `${testCase.name} refused: ${refusedByNode}` : testCase.name;
        it(name, async () => replay((await serverFor(testCase.config)).port, testCase, refusedByNode !== undefined));
      }
    });
  }
}
