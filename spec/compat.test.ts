/**
 * The parser-compatibility framer (actors/request-normalizer.ts): what it rewrites, that it follows
 * message boundaries exactly (pipelining, bodies, chunks, upgrades), that it holds no more than a line,
 * and that a server behind it restores what the client sent for each request of a keep-alive connection.
 */
import assert from 'node:assert/strict';
import net from 'node:net';
import { describe, it } from 'node:test';
import { RequestNormalizer } from '../actors/request-normalizer.js';
import type { ParserCompat } from '../shared/actor-protocol.js';
import { fixture, runCli, strategies, withServer } from './helpers/servers.js';
import { exchange } from './helpers/wire.js';

const GUNICORN: ParserCompat = {
  gunicorn: true,
  permitObsoleteFolding: false,
  stripHeaderSpaces: false,
  permitUnconventionalHttpMethod: false,
  casefoldHttpMethod: false,
  fieldSize: 0,
};
const LENIENT: ParserCompat = { ...GUNICORN, permitObsoleteFolding: true, stripHeaderSpaces: true, permitUnconventionalHttpMethod: true };

/** Feeds `input` in pieces of `step` bytes and returns what Node's parser would be given. */
function normalize(compat: ParserCompat, input: string, step = input.length): { out: string; normalizer: RequestNormalizer } {
  const normalizer = new RequestNormalizer(compat);
  const bytes = Buffer.from(input, 'latin1');
  const out: Buffer[] = [];
  for (let at = 0; at < bytes.length; at += step) out.push(Buffer.from(normalizer.feed(bytes.subarray(at, at + step))));
  out.push(Buffer.from(normalizer.end()));
  return { out: Buffer.concat(out).toString('latin1'), normalizer };
}

describe('request normalizer', () => {
  const cases: Array<{ name: string; compat: ParserCompat; input: string; output: string }> = [
    {
      name: 'drops chunk extensions with whitespace, keeps the chunk data and trailers',
      compat: GUNICORN,
      input: 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5; a = b\r\nhello\r\n6 ;c\r\n world\r\n0\r\nX-T: 1\r\n\r\n',
      output: 'POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\nX-T: 1\r\n\r\n',
    },
    {
      name: 'hides Transfer-Encoding: identity',
      compat: GUNICORN,
      input: 'POST / HTTP/1.1\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nhi',
      output: 'POST / HTTP/1.1\r\nContent-Length: 2\r\n\r\nhi',
    },
    {
      name: 'sends an unknown method as GET and percent-encodes raw bytes in the target',
      compat: GUNICORN,
      input: 'PURGE-ALL /caf\xe9 HTTP/1.1\r\n\r\n',
      output: 'GET /caf%E9 HTTP/1.1\r\n\r\n',
    },
    {
      name: 'unfolds and strips spaces before the colon when asked to',
      compat: LENIENT,
      input: 'GET / HTTP/1.1\r\nX-A : one\r\n  two\r\n\tthree\r\nHost: h\r\n\r\n',
      output: 'GET / HTTP/1.1\r\nX-A: one two three\r\nHost: h\r\n\r\n',
    },
    {
      name: 'leaves a body that looks like a request alone',
      compat: GUNICORN,
      input: 'POST / HTTP/1.1\r\nContent-Length: 25\r\n\r\n-BLARGH / HTTP/1.1\r\n\r\n\r\n',
      output: 'POST / HTTP/1.1\r\nContent-Length: 25\r\n\r\n-BLARGH / HTTP/1.1\r\n\r\n\r\n',
    },
    {
      name: 'stops rewriting after an upgrade',
      compat: GUNICORN,
      input: 'GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n-BLARGH / HTTP/1.1\r\n\r\n',
      output: 'GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n-BLARGH / HTTP/1.1\r\n\r\n',
    },
    {
      name: 'stops rewriting at conflicting framing (Node refuses it as it is)',
      compat: GUNICORN,
      input: 'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3; x = y\r\nabc\r\n0\r\n\r\n',
      output: 'POST / HTTP/1.1\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n3; x = y\r\nabc\r\n0\r\n\r\n',
    },
    {
      name: 'stops rewriting at a bare LF',
      compat: GUNICORN,
      input: 'GET / HTTP/1.1\nX: y\r\n\r\n-BLARGH / HTTP/1.1\r\n\r\n',
      output: 'GET / HTTP/1.1\nX: y\r\n\r\n-BLARGH / HTTP/1.1\r\n\r\n',
    },
    {
      name: 'refuses to rewrite a folded line without --permit-obsolete-folding',
      compat: GUNICORN,
      input: 'GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n',
      output: 'GET / HTTP/1.1\r\nX-A: one\r\n two\r\n\r\n',
    },
  ];
  for (const { name, compat, input, output } of cases) {
    it(name, () => {
      assert.equal(normalize(compat, input).out, output, 'fed whole');
      assert.equal(normalize(compat, input, 1).out, output, 'fed a byte at a time');
      assert.equal(normalize(compat, input, 7).out, output, 'fed 7 bytes at a time');
    });
  }

  it('numbers its fix-ups by request, across pipelined requests with bodies', () => {
    const { normalizer } = normalize(GUNICORN, 'GET / HTTP/1.1\r\n\r\nMKFOO /x HTTP/1.1\r\nContent-Length: 4\r\n\r\nbodyGET /\xff HTTP/1.1\r\n\r\n', 3);
    assert.equal(normalizer.takeFixup(1), undefined);
    assert.deepEqual(normalizer.takeFixup(2), { method: 'MKFOO' });
    assert.deepEqual(normalizer.takeFixup(3), { url: '/\xff' });
    assert.equal(normalizer.takeFixup(3), undefined, 'a fix-up is taken once');
  });

  it('passes a trickled head on line by line, holding only the unfinished line', () => {
    const normalizer = new RequestNormalizer(GUNICORN);
    assert.equal(Buffer.from(normalizer.feed(Buffer.from('GET / HTTP/1.1\r\nHost: a'))).toString(), 'GET / HTTP/1.1\r\n');
    assert.equal(Buffer.from(normalizer.feed(Buffer.from('b\r\nX'))).toString(), 'Host: ab\r\n');
    assert.equal(Buffer.from(normalizer.end()).toString(), 'X', 'the FIN hands on what is held');
  });

  it('counts a folded field against the field size limit', () => {
    const { normalizer } = normalize({ ...LENIENT, fieldSize: 14 }, 'GET / HTTP/1.1\r\nAccept:\r\n */*\r\n\r\n');
    assert.equal(normalizer.takeFixup(1)?.reject?.status, 431);
  });
});

for (const strategy of await strategies()) {
  describe(`--http-compat gunicorn (${strategy})`, () => {
    it('restores each request of a keep-alive connection as sent', async () => {
      await withServer({ app: fixture('echo.js'), handoff: strategy, httpCompat: 'gunicorn' }, async ({ port }) => {
        const requests = [
          'MKFOO /a HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc',
          'GET /b HTTP/1.1\r\nHost: x\r\n\r\n',
          'POST /caf\xe9 HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: identity\r\nContent-Length: 2\r\n\r\nhi',
          'POST /d HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n2 ; q=1\r\nok\r\n0\r\n\r\n',
        ];
        const { responses } = await exchange(port, Buffer.from(requests.join(''), 'latin1'), { responses: 4 });
        const echoes = responses.map((response) => JSON.parse(response.body.toString()) as { method: string; url: string; rawHeaders: string[]; body: string });
        assert.deepEqual(
          echoes.map((echo) => [echo.method, echo.url, Buffer.from(echo.body, 'base64').toString()]),
          [
            ['MKFOO', '/a', 'abc'],
            ['GET', '/b', ''],
            ['POST', '/caf\xe9', 'hi'],
            ['POST', '/d', 'ok'],
          ],
        );
        assert.deepEqual(echoes[2].rawHeaders, ['Host', 'x', 'Transfer-Encoding', 'identity', 'Content-Length', '2']);
      });
    });

    it('still refuses what gunicorn refuses: a lower-case method, two lengths', async () => {
      await withServer({ app: fixture('echo.js'), handoff: strategy, httpCompat: 'gunicorn' }, async ({ port }) => {
        for (const bytes of ['blargh / HTTP/1.1\r\nHost: x\r\n\r\n', 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab']) {
          const { responses, closed } = await exchange(port, bytes, { timeoutMs: 3000 });
          assert.equal(responses[0]?.status, 400, bytes);
          assert.ok(closed);
        }
      });
    });

    it('answers a request asking to upgrade, with or without a body, as a plain one when the app listens for no upgrade', async () => {
      await withServer({ app: fixture('echo.js'), handoff: strategy, httpCompat: 'gunicorn' }, async ({ port }) => {
        for (const body of ['', 'abc']) {
          const head = `POST /up HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nContent-Length: ${body.length}\r\n\r\n`;
          const { responses } = await exchange(port, head + body, { timeoutMs: 3000 });
          assert.equal(responses[0]?.status, 200, `answered (body ${JSON.stringify(body)})`);
          const echo = JSON.parse(responses[0].body.toString()) as { url: string; body: string };
          assert.deepEqual([echo.url, Buffer.from(echo.body, 'base64').toString()], ['/up', body]);
        }
      });
    });

    it('a keep-alive request trickled through the framer still meets the header deadline (408)', async () => {
      await withServer({ app: fixture('echo.js'), handoff: strategy, httpCompat: 'gunicorn', headerTimeout: 1, bodyTimeout: 0 }, async ({ port }) => {
        const socket = net.connect(port, '127.0.0.1');
        let received = '';
        socket.on('data', (chunk) => (received += chunk.toString('latin1')));
        const closed = new Promise<void>((resolve) => socket.on('close', () => resolve()));
        socket.on('error', () => {});
        socket.write('GET /first HTTP/1.1\r\nHost: x\r\n\r\n');
        const trickle = 'GET /second HTTP/1.1\r\nHost: x\r\nX-Slow: ';
        let sent = 0;
        const timer = setInterval(() => {
          if (!socket.destroyed) socket.write(trickle[sent++ % trickle.length]);
        }, 100);
        const started = Date.now();
        await Promise.race([closed, new Promise((resolve) => setTimeout(resolve, 6000))]);
        clearInterval(timer);
        socket.destroy();
        assert.match(received, /^HTTP\/1\.1 200/, 'the first request is served');
        assert.match(received, /HTTP\/1\.1 408/, `the trickled one gets 408: ${received.slice(-200)}`);
        assert.ok(Date.now() - started < 5000, 'within the deadline and a check interval');
      });
    });
  });
}

describe('--http-compat on the command line', () => {
  it('rejects an unknown mode with one line and a non-zero exit', async () => {
    const result = await runCli(['--http-compat', 'lenient', fixture('echo.js')]);
    assert.notEqual(result.status, 0);
    assert.match(result.stderr, /http-compat/);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
  });
});
