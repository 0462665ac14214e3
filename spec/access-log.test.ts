/**
 * The access log: gunicorn's default format, custom atoms, JSON lines; to a file and to stdout.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fixture, startCli, strategies, withServer } from './helpers/servers.js';
import { until } from './helpers/wait.js';

/** The lines of the file, or none before it exists. */
const linesIn = (file: string): string[] => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

/** Lines arrive from the actors in batches: wait until the file holds `count` of them (or 5 s; the caller then asserts on what is there). */
async function linesOf(file: string, count: number): Promise<string[]> {
  return until(
    () => {
      const lines = linesIn(file);
      return lines.length >= count && lines;
    },
    `${count} lines`,
    5000,
    20,
  ).catch(() => linesIn(file));
}

const tmpFile = () => path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-access-')), 'access.log');
const auth = `Basic ${Buffer.from('ada:secret').toString('base64')}`;

for (const strategy of await strategies()) {
  describe(`access log (${strategy})`, () => {
    it("writes gunicorn's default format, one line per response", () => {
      const file = tmpFile();
      return withServer({ app: fixture('behaviours.js'), handoff: strategy, accessLogfile: file }, async ({ url }) => {
        await (await fetch(`${url}/head?x=1`, { headers: { 'user-agent': 'test-agent/1', referer: 'http://from.example/', authorization: auth } })).text();
        await fetch(`${url}/head`, { method: 'HEAD' });
        await (await fetch(`${url}/stream?n=2&gap=1`)).text();
        const lines = await linesOf(file, 3);
        assert.equal(lines.length, 3, lines.join('\n'));
        const date = String.raw`\[\d{2}/[A-Z][a-z]{2}/\d{4}:\d{2}:\d{2}:\d{2} \+0000\]`;
        // A line is written when its response closes; fetch may resolve before that, so match lines by request.
        const lineFor = (request: string) => lines.find((line) => line.includes(`"${request} HTTP/1.1"`)) ?? `no line for ${request}:\n${lines.join('\n')}`;
        assert.match(
          lineFor('GET /head?x=1'),
          new RegExp(String.raw`^127\.0\.0\.1 - ada ${date} "GET /head\?x=1 HTTP/1\.1" 200 3 "http://from\.example/" "test-agent/1"$`),
        );
        assert.match(lineFor('HEAD /head'), new RegExp(String.raw`^127\.0\.0\.1 - - ${date} "HEAD /head HTTP/1\.1" 200 0 "-" "[^"]+"$`));
        assert.match(lineFor('GET /stream?n=2&gap=1'), /"GET \/stream\?n=2&gap=1 HTTP\/1\.1" 200 16 /, 'chunked body bytes are counted');
      });
    });

    it('takes custom atoms, request and response headers, and the request time', () => {
      const file = tmpFile();
      const format = '%(m)s %(U)s %(q)s %(H)s %(s)s %({x-request-id}i)s %({content-type}o)s %(L)s %(D)s';
      return withServer({ app: fixture('behaviours.js'), handoff: strategy, accessLogfile: file, accessLogformat: format }, async ({ url }) => {
        await (await fetch(`${url}/stream?n=2&gap=100`, { headers: { 'x-request-id': 'req-42' } })).text();
        const [line] = await linesOf(file, 1);
        const match = /^GET \/stream n=2&gap=100 HTTP\/1\.1 200 req-42 text\/plain (\d+\.\d{6}) (\d+)$/.exec(line);
        assert.ok(match, line);
        assert.ok(Number(match[1]) >= 0.1, 'the request took at least its 100 ms gap');
        assert.equal(Math.round(Number(match[1]) * 1e6), Number(match[2]));
      });
    });

    it('writes one JSON object per line with --access-logformat json', () => {
      const file = tmpFile();
      return withServer({ app: fixture('behaviours.js'), handoff: strategy, accessLogfile: file, accessLogformat: 'json' }, async ({ url }) => {
        await (await fetch(`${url}/head`, { headers: { authorization: auth } })).text();
        const [line] = await linesOf(file, 1);
        const entry = JSON.parse(line) as Record<string, unknown>;
        assert.equal(entry.method, 'GET');
        assert.equal(entry.url, '/head');
        assert.equal(entry.status, 200);
        assert.equal(entry.bytes, 3);
        assert.equal(entry.user, 'ada');
        assert.equal(entry.remote, '127.0.0.1');
        assert.equal(typeof entry.durationMs, 'number');
        assert.ok(!Number.isNaN(Date.parse(String(entry.time))));
      });
    });
  });
}

describe('access log on the command line', () => {
  it('--access-logfile - writes to stdout, the error log stays on stderr', async () => {
    const cli = await startCli(['-b', '127.0.0.1:0', '--access-logfile', '-', 'examples/hello.js']);
    let stdout = '';
    cli.child.stdout!.on('data', (chunk) => (stdout += chunk));
    await (await fetch(`${cli.url}/cli-path`)).text();
    await until(() => stdout.includes('/cli-path'), 'the access log line on stdout', 5000);
    await cli.stop();
    assert.match(stdout, /"GET \/cli-path HTTP\/1\.1" 200 13 "-" /);
    assert.doesNotMatch(cli.output(), /cli-path/);
  });
});
