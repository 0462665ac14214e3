/**
 * HTTP/2 over TLS (`--http-protocols h2,h1`), through both hand-offs: ALPN chooses it per connection beside
 * HTTP/1.1, each stream is a request (counted, logged, held to the HTTP/1.1 head rules), the real frameworks
 * that can speak it do, GOAWAY drains a reload, and clients nobody here wrote (curl, h2load) agree.
 */
import assert from 'node:assert/strict';
import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import http2 from 'node:http2';
import { describe, it } from 'node:test';
import { promisify } from 'node:util';
import { fixture, runCli, strategies, withServer } from './helpers/servers.js';
import { makeCertificate } from './helpers/certificates.js';
import { APPS, ROUTES, STREAM_LINES, frameworkApp } from './helpers/framework-apps.js';
import { until } from './helpers/wait.js';
import { ERROR, FLAG, FRAME, frame, getBlock, junkFields, openRaw, type RawConnection } from './helpers/h2-frames.js';
import type { GrainbowsServer } from '../source/server.js';
import { browserSkipReason, launchBrowser } from './helpers/browser.js';

const run = promisify(execFile);
const haveH2load = spawnSync('h2load', ['--version']).status === 0;
const haveNghttp = spawnSync('nghttp', ['--version']).status === 0;
/** Outside CI a missing tool skips its test; in CI (.ci/run installs them) a missing one fails. */
const needs = (present: boolean, tool: string): string | false =>
  present || process.env.CI ? false : `${tool} is not installed (apt-get install nghttp2-client haproxy)`;
const certificate = makeCertificate('h2');
const ca = readFileSync(certificate.certfile);
const h2 = { ...certificate, httpProtocols: 'h2,h1' };
/** The fixtures whose framework replaces the request's and response's prototypes (actors/http2-sessions.ts, http2Refusal). */
const HTTP1_ONLY = new Set(['express.js', 'nest.js']);

/** An HTTP/2 session to the server, trusting the test certificate. */
function connect(url: string): http2.ClientHttp2Session {
  const session = http2.connect(url, { ca, servername: 'localhost' });
  session.on('error', () => {});
  return session;
}

/** One request on `session`: status, headers and body. */
function ask(
  session: http2.ClientHttp2Session,
  headers: http2.OutgoingHttpHeaders,
  body?: string,
): Promise<{ status: number; headers: http2.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const stream = session.request(headers, { endStream: body === undefined });
    let received = '';
    let responseHeaders: http2.IncomingHttpHeaders = {};
    stream.setEncoding('utf8');
    stream.on('response', (h) => (responseHeaders = h));
    stream.on('data', (chunk: string) => (received += chunk));
    stream.on('end', () => resolve({ status: Number(responseHeaders[':status']), headers: responseHeaders, body: received }));
    stream.on('error', reject);
    if (body !== undefined) stream.end(body);
  });
}

/**
 * An HTTP/2 client that keeps going across GOAWAY as RFC 9113 §6.8 has clients do: new streams go to a new
 * connection once the server said GOAWAY, and a stream refused unprocessed (REFUSED_STREAM, or opened on
 * a connection the server was closing) is repeated once there. Any other failure is the test's.
 */
class ReconnectingClient {
  private session: http2.ClientHttp2Session;
  retried = 0;

  constructor(private readonly url: string) {
    this.session = this.open();
  }

  private open(): http2.ClientHttp2Session {
    const session = connect(this.url);
    session.once('goaway', () => {
      if (this.session === session) this.session = this.open();
    });
    return session;
  }

  private current(): http2.ClientHttp2Session {
    if (this.session.closed || this.session.destroyed) this.session = this.open();
    return this.session;
  }

  async get(path: string): Promise<{ status: number; body: string }> {
    try {
      return await ask(this.current(), { ':path': path });
    } catch (error) {
      const { code } = error as NodeJS.ErrnoException;
      if (code !== 'ERR_HTTP2_GOAWAY_SESSION' && !/REFUSED_STREAM|NGHTTP2_REFUSED_STREAM/.test(String(error))) throw error;
      this.retried++;
      if (this.session.closed || this.session.destroyed || this.session.closed) this.session = this.open();
      return ask(this.current(), { ':path': path });
    }
  }

  close(): void {
    this.session.close();
  }
}

for (const strategy of await strategies()) {
  describe(`HTTP/2 over TLS (${strategy})`, () => {
    it('ALPN gives h2 to those who offer it and HTTP/1.1 to the rest, on one listener; h1 alone offers no h2', async () => {
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, ...h2 }, async ({ url }) => {
        const curl = async (flag: string) =>
          (await run('curl', ['-sS', '--cacert', certificate.certfile, flag, '-w', '\n%{http_version}', `${url}/`])).stdout.split('\n');
        const [overH2, versionH2] = await curl('--http2');
        assert.equal(versionH2, '2');
        assert.equal(JSON.parse(overH2).httpVersion, '2.0', 'the app sees an HTTP/2 request');
        const [overH1, versionH1] = await curl('--http1.1');
        assert.equal(versionH1, '1.1');
        assert.equal(JSON.parse(overH1).httpVersion, '1.1');
      });
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, ...certificate }, async ({ url }) => {
        const { stdout } = await run('curl', ['-sS', '--cacert', certificate.certfile, '--http2', '-o', '/dev/null', '-w', '%{http_version}', `${url}/`]);
        assert.equal(stdout, '1.1', 'the default, h1, never negotiates h2');
      });
    });

    it('counts every stream as a request: ctl figures, the access log (HTTP/2.0), --max-requests past which the actor is replaced', async () => {
      const accessLogfile = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-h2-')), 'access.log');
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, ...h2, workers: 1, maxRequests: 150, accessLogfile }, async ({ url, server }) => {
        // 300 GETs over HTTP/2, 20 at a time, by a client that does what RFC 9113 §6.8 lets it (and browsers
        // do): after a GOAWAY it opens streams on a new connection, and repeats one the server refused unprocessed.
        const client = new ReconnectingClient(url);
        let ok = 0;
        const versions = new Set<string>();
        for (let round = 0; round < 15; round++) {
          const answers = await Promise.all(Array.from({ length: 20 }, () => client.get('/')));
          for (const answer of answers) {
            if (answer.status === 200) ok++;
            versions.add((JSON.parse(answer.body) as { httpVersion: string }).httpVersion);
          }
        }
        client.close();
        assert.equal(ok, 300, 'every stream answered, across the recycling');
        assert.deepEqual([...versions], ['2.0']);
        // --max-requests 150 retires the first actor: a replacement starts, and the first one ends.
        const stats = await until(async () => {
          const now = await server.stats();
          return (
            now.actorsStarted >= 2 &&
            now.actorEndings.retired >= 1 &&
            now.actors.every((actor) => actor.requestsInFlight === 0 && actor.connections === 0) &&
            now
          );
        }, 'the first actor retired, and no stream or connection left in the actors');
        assert.equal(stats.responses.byStatusClass['2xx'], 300);
      });
      const lines = readFileSync(accessLogfile, 'utf8').trim().split('\n');
      assert.equal(lines.length, 300);
      assert.ok(
        lines.every((line) => line.includes('"GET / HTTP/2.0" 200')),
        lines.find((line) => !line.includes('HTTP/2.0')),
      );
    });

    it("holds HTTP/2 requests to the HTTP/1.1 head rules; the scheme is the transport's, never :scheme", { skip: needs(haveNghttp, 'nghttp') }, async () => {
      await withServer(
        { app: fixture('behaviours.js'), handoff: strategy, ...h2, forwardedAllowIps: '192.168.0.1', limitRequestFields: 8 },
        async ({ url }) => {
          const nghttp = async (...headers: string[]) =>
            (await run('nghttp', ['-v', ...headers.flatMap((header) => ['-H', header]), `${url}/headers`]).catch((error: { stdout: string }) => error)).stdout;
          assert.match(await nghttp('content-type: a', 'content-type: b'), /:status: 400/, 'two Content-Types are refused');
          const echoed = (output: string) =>
            JSON.parse(output.slice(output.indexOf('{"url"'), output.lastIndexOf('}') + 1)) as { headers: Record<string, string> };
          const passed = echoed(await nghttp('x-a_b: 1', 'x-forwarded-for: 203.0.113.9', 'x-kept: yes'));
          assert.equal(passed.headers['x-a_b'], undefined, 'a header name with _ is dropped');
          assert.equal(passed.headers['x-forwarded-for'], undefined, 'an untrusted peer cannot forward');
          assert.equal(passed.headers['x-kept'], 'yes');
          assert.equal(passed.headers[':scheme'], 'https');
          assert.match(await nghttp(...Array.from({ length: 10 }, (_, i) => `x-field-${i}: ${i}`)), /:status: 431/, 'more than --limit-request-fields');
          assert.equal(echoed(await nghttp(':scheme: http')).headers[':scheme'], 'https', 'the transport decides the scheme');
        },
      );
      await withServer({ app: `${fixture('fetch-function.js')}:handler`, handoff: strategy, ...h2 }, async ({ url }) => {
        const { stdout } = await run('nghttp', ['-H', ':scheme: http', `${url}/whoami`]);
        assert.equal((JSON.parse(stdout) as { url: string }).url, `${url}/whoami`, 'a Fetch app builds an https URL');
      });
    });

    it('holds each stream to --limit-request-body (413) and --request-timeout (504) without ending its connection', async () => {
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, ...h2, limitRequestBody: 1000, requestTimeout: 1 }, async ({ url, server }) => {
        const session = connect(url);
        const body = 'x'.repeat(2000);
        const tooLarge = await ask(session, { ':method': 'POST', ':path': '/echo', 'content-length': body.length }, body);
        assert.equal(tooLarge.status, 413);
        const startedAt = Date.now();
        const timedOut = await ask(session, { ':path': '/never' });
        assert.equal(timedOut.status, 504);
        assert.ok(Date.now() - startedAt < 4000);
        assert.equal((await ask(session, { ':path': '/headers' })).status, 200, 'the connection carries on');
        session.close();
        await until(
          async () => (await server.stats()).actors.every((actor) => actor.requestsInFlight === 0 && actor.connections === 0),
          'every stream settled',
        );
      });
    });

    it('drains with GOAWAY on reload: a stream under way finishes, the next connection reaches the new generation', async () => {
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, ...h2, workers: 1 }, async ({ url, server }) => {
        const session = connect(url);
        assert.equal((await ask(session, { ':path': '/' })).status, 200);
        const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()));
        const slow = ask(session, { ':path': '/slow' });
        await new Promise((resolve) => setTimeout(resolve, 50));
        await server.reload();
        await goaway;
        const answer = await slow;
        assert.deepEqual([answer.status, answer.body], [200, 'slow'], 'the stream under way when GOAWAY came finished');
        const fresh = connect(url);
        assert.equal((await ask(fresh, { ':path': '/' })).status, 200);
        fresh.close();
        const stats = await server.stats();
        assert.deepEqual(
          stats.actors.map((actor) => actor.generation),
          [2],
        );
      });
    });

    it('h2load: 20,000 requests over 32 connections, 10 streams each, none failed', { skip: needs(haveH2load, 'h2load') }, async () => {
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, ...h2 }, async ({ url, server }) => {
        const { stdout } = await run('h2load', ['-n', '20000', '-c', '32', '-m', '10', `${url}/`], { timeout: 60_000 });
        assert.match(stdout, /requests: 20000 total, 20000 started, 20000 done, 20000 succeeded, 0 failed/, stdout);
        const stats = await until(async () => {
          const now = await server.stats();
          return now.actors.every((actor) => actor.requestsInFlight === 0 && actor.connections === 0) && now;
        }, 'every h2load connection let go');
        assert.equal(stats.responses.byStatusClass['2xx'], 20000);
      });
    });

    it('offers only HTTP/1.1 to apps that cannot speak HTTP/2 (Express, NestJS on Express), and says so once', async () => {
      for (const file of HTTP1_ONLY) {
        await withServer({ app: frameworkApp(file), handoff: strategy, ...h2 }, async ({ url, server, logs }) => {
          const { stdout } = await run('curl', ['-sS', '--cacert', certificate.certfile, '--http2', '-w', '\n%{http_version}', `${url}/hello`]);
          assert.deepEqual(stdout.split('\n').slice(-1), ['1.1'], `${file}: ALPN chose HTTP/1.1`);
          await until(() => logs.some((line) => line.includes('HTTP/2 is not offered')), 'the warning');
          assert.equal(logs.filter((line) => line.includes('HTTP/2 is not offered')).length, 1, logs.join(''));
          const stats = await until(async () => {
            const now = await server.stats();
            return now.responses.byStatusClass['2xx'] === 1 && now;
          }, 'the one response counted');
          assert.equal(stats.actorEndings.crashed, 0);
        });
      }
    });

    describe('real frameworks over HTTP/2', () => {
      for (const { name, file, routes = ROUTES } of APPS.filter(({ file }) => !HTTP1_ONLY.has(file))) {
        it(`${name}: hello, a JSON echo, a thrown error and a streamed response, on one connection`, async () => {
          await withServer({ app: frameworkApp(file), handoff: strategy, ...h2 }, async ({ url, server }) => {
            const session = connect(url);
            try {
              const hello = await ask(session, { ':path': routes.hello });
              assert.equal(hello.status, 200, hello.body);
              const echo = routes.echo(7);
              // With its length, as browsers and curl send it (koa-body reads no body without one).
              const json = JSON.stringify(echo.body);
              const echoed = await ask(
                session,
                { ':method': 'POST', ':path': echo.path, 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) },
                json,
              );
              assert.equal(echoed.status, 200, echoed.body);
              assert.deepEqual(JSON.parse(echoed.body), echo.answer);
              assert.equal((await ask(session, { ':path': routes.boom.path })).status, routes.boom.status);
              const streamed = await ask(session, { ':path': routes.stream.path, ...routes.stream.headers });
              assert.equal(streamed.status, 200);
              assert.equal(routes.stream.parts(streamed.body), STREAM_LINES);
            } finally {
              session.close();
            }
            const stats = await until(async () => {
              const now = await server.stats();
              return now.actors.every((actor) => actor.requestsInFlight === 0) && now;
            }, 'every stream settled');
            assert.equal(stats.responses.count, 4, 'each stream counted once');
          });
        });
      }
    });
  });
}

/** After an attack: another client is served, nothing is left in flight, the attacker's connection is let go, no actor ended. */
async function servesOnCleanly(url: string, server: GrainbowsServer, attacker: RawConnection): Promise<void> {
  const bystander = connect(url);
  assert.equal((await ask(bystander, { ':path': '/' })).status, 200, 'another client is served');
  bystander.close();
  attacker.socket.destroy();
  const stats = await until(async () => {
    const now = await server.stats();
    return now.actors.every((actor) => actor.requestsInFlight === 0 && actor.connections === 0) && now;
  }, 'no stream, slot or connection left behind');
  assert.equal(stats.actorEndings.crashed, 0);
  assert.equal(stats.actorsStarted, stats.actors.length, 'no actor was replaced');
}

/** `count` frames written in batches, yielding between them so the server's answers are read meanwhile. */
async function flood(connection: RawConnection, count: number, make: (i: number) => Buffer): Promise<number> {
  let sent = 0;
  while (sent < count && !connection.received.closed) {
    const batch: Buffer[] = [];
    for (let i = 0; i < 100 && sent < count; i++, sent++) batch.push(make(sent));
    connection.send(Buffer.concat(batch));
    await new Promise((resolve) => setImmediate(resolve));
  }
  return sent;
}

for (const strategy of await strategies()) {
  describe(`HTTP/2 abuse (${strategy})`, () => {
    const options = { app: fixture('tls-facts.js'), handoff: strategy, ...h2, workers: 1 };

    it('rapid reset (CVE-2023-44487): 5,000 streams opened and cancelled at once end in GOAWAY ENHANCE_YOUR_CALM, and nothing is left behind', async () => {
      await withServer(options, async ({ url, port, server }) => {
        const attacker = await openRaw(port, ca);
        await flood(attacker, 5000, (i) =>
          Buffer.concat([
            frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 2 * i + 1, getBlock('/slow')),
            frame(FRAME.RST_STREAM, 0, 2 * i + 1, Buffer.from([0, 0, 0, ERROR.CANCEL])),
          ]),
        );
        // On a busy machine 5,000 streams take a while to reach the actor's count: wait for the GOAWAY itself.
        await until(() => attacker.received.goaway || attacker.received.closed, 'the server to say GOAWAY', 15_000).catch(() => {});
        assert.ok(attacker.received.goaway, 'the server said GOAWAY');
        // Ours (ENHANCE_YOUR_CALM), or Node's own when one read carried its 1,000 resets before ours could
        // count (INTERNAL_ERROR): either way the server closes the connection, which Node alone did not.
        assert.ok(
          [ERROR.ENHANCE_YOUR_CALM, ERROR.INTERNAL_ERROR].includes(attacker.received.goaway.code as 2 | 11),
          `GOAWAY code ${attacker.received.goaway.code}`,
        );
        await until(() => attacker.received.closed, 'the server to close the connection');
        await servesOnCleanly(url, server, attacker);
      });
    });

    it('CONTINUATION flood (CVE-2024-27316): a header block that never ends is cut off at --http2-max-header-list-size', async () => {
      await withServer(options, async ({ url, port, server }) => {
        const attacker = await openRaw(port, ca);
        attacker.send(frame(FRAME.HEADERS, 0, 1, getBlock('/')));
        // 5,000 frames of 10 fields each: 5.5 MB of headers, against a 64 KiB limit.
        const sent = await flood(attacker, 5000, () => frame(FRAME.CONTINUATION, 0, 1, junkFields(10)));
        await Promise.race([attacker.ended, new Promise((resolve) => setTimeout(resolve, 5000))]);
        assert.ok(attacker.received.goaway || attacker.received.closed, 'the server ended the connection');
        assert.ok(sent < 5000 || attacker.received.goaway, `cut off after ${sent} frames`);
        await servesOnCleanly(url, server, attacker);
      });
    });

    for (const [name, make] of [
      ['PING', () => frame(FRAME.PING, 0, 0, Buffer.alloc(8))],
      ['SETTINGS', () => frame(FRAME.SETTINGS, 0, 0, Buffer.from([0, 3, 0, 0, 0, 100]))],
    ] as const) {
      it(`${name} flood from a client that reads nothing: the server stops queueing answers and ends the connection`, async () => {
        await withServer(options, async ({ url, port, server }) => {
          const attacker = await openRaw(port, ca);
          await new Promise((resolve) => setTimeout(resolve, 100)); // the server's SETTINGS are read and acknowledged
          attacker.socket.pause();
          for (let i = 0; i < 200 && !attacker.socket.destroyed; i++) attacker.send(Buffer.concat(Array.from({ length: 100 }, make)));
          attacker.socket.resume();
          // RFC 9113 lets the server answer every frame or end the connection; it must not hang or hoard.
          await Promise.race([attacker.ended, until(() => attacker.received.acks >= 20_000, 'every frame acknowledged', 20_000)]);
          assert.ok(attacker.received.goaway || attacker.received.closed || attacker.received.acks >= 20_000, `acknowledged ${attacker.received.acks}`);
          await servesOnCleanly(url, server, attacker);
        });
      });
    }

    it('--http2-max-concurrent-streams: a client keeps to it (10 streams at once, 5 at a time); one that ignores it loses its connection', async () => {
      await withServer({ ...options, http2MaxConcurrentStreams: 5 }, async ({ url, port, server }) => {
        // Node's client, as browsers do, queues the streams past the server's limit once it knows it.
        const session = connect(url);
        await new Promise((resolve) => session.once('remoteSettings', resolve));
        const startedAt = Date.now();
        const answers = await Promise.all(Array.from({ length: 10 }, () => ask(session, { ':path': '/slow' })));
        assert.deepEqual(
          answers.map((answer) => answer.status),
          Array(10).fill(200),
        );
        assert.ok(Date.now() - startedAt >= 550, 'two rounds of five 300 ms streams, not one of ten');
        session.close();
        // A raw client opens 10 at once: nghttp2 takes that for a protocol error and Node ends the connection.
        const attacker = await openRaw(port, ca);
        await new Promise((resolve) => setTimeout(resolve, 100)); // the server's SETTINGS are read and acknowledged
        attacker.send(
          Buffer.concat(Array.from({ length: 10 }, (_, i) => frame(FRAME.HEADERS, FLAG.END_HEADERS | FLAG.END_STREAM, 2 * i + 1, getBlock('/slow')))),
        );
        await Promise.race([attacker.ended, new Promise((resolve) => setTimeout(resolve, 5000))]);
        assert.ok(attacker.received.closed || attacker.received.goaway, 'the connection was ended');
        assert.equal(attacker.received.answered.size, 0);
        await servesOnCleanly(url, server, attacker);
      });
    });
  });
}

describe('Chromium over HTTP/2', { skip: browserSkipReason() }, () => {
  it('one page keeps 20 EventSource streams open over h2, every one receiving events; over HTTP/1.1 only 6 do', async () => {
    const browser = await launchBrowser(['--ignore-certificate-errors']);
    try {
      for (const [httpProtocols, expected] of [
        ['h2,h1', { protocol: 'h2', receiving: 20 }],
        ['h1', { protocol: 'http/1.1', receiving: 6 }],
      ] as const) {
        // The streams never end by themselves: a short graceful timeout ends whatever the browser keeps open.
        await withServer({ app: fixture('event-streams.js'), ...certificate, httpProtocols, workers: 2, gracefulTimeout: 2 }, async ({ url }) => {
          const page = await browser.newPage();
          try {
            await page.goto(`${url}/?n=20`);
            const protocol = await page.evaluate<string>("performance.getEntriesByType('navigation')[0].nextHopProtocol");
            assert.equal(protocol, expected.protocol);
            // Two seconds: every open stream has had some 20 events by then.
            await new Promise((resolve) => setTimeout(resolve, 2000));
            const got = await page.evaluate<number[]>('window.got');
            const receiving = got.filter((count) => count >= 3).length;
            assert.equal(receiving, expected.receiving, `streams receiving events over ${protocol}: ${JSON.stringify(got)}`);
          } finally {
            await page.close();
          }
        });
      }
    } finally {
      await browser.close();
    }
  });
});

const haveHaproxy = spawnSync('haproxy', ['-v']).status === 0;

/** Starts HAProxy: plain HTTP/1.1 in front, `backend` behind as a cleartext HTTP/2 server (`proto h2`). */
async function startHaproxy(backend: string): Promise<{ url: string; stop: () => void }> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-haproxy-'));
  const port = await new Promise<number>((resolve) => {
    const probe = net.createServer().listen(0, '127.0.0.1', () => {
      const { port: free } = probe.address() as net.AddressInfo;
      probe.close(() => resolve(free));
    });
  });
  const config = path.join(dir, 'haproxy.cfg');
  writeFileSync(
    config,
    [
      'global',
      '  maxconn 200',
      'defaults',
      '  mode http',
      '  timeout connect 5s',
      '  timeout client 30s',
      '  timeout server 30s',
      'frontend front',
      `  bind 127.0.0.1:${port}`,
      '  default_backend app',
      'backend app',
      `  server grainbows ${new URL(backend).host} proto h2`,
      '',
    ].join('\n'),
  );
  const child = spawn('haproxy', ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => (stderr += chunk));
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1', () => resolve(socket.end() !== undefined));
        socket.on('error', () => resolve(false));
      }),
    `HAProxy listening (${stderr})`,
  );
  return { url: `http://127.0.0.1:${port}`, stop: () => child.kill('SIGKILL') };
}

for (const strategy of await strategies()) {
  describe(`cleartext HTTP/2 by prior knowledge (${strategy})`, () => {
    const options = { app: fixture('tls-facts.js'), handoff: strategy, http2Cleartext: 'prior-knowledge' } as const;
    const curl = async (url: string, ...flags: string[]) =>
      (await run('curl', ['-sS', ...flags, '-w', '\n%{http_version}', `${url}/`]).catch((error: { stdout: string; stderr: string }) => error)).stdout.split(
        '\n',
      );

    it('serves HTTP/2 to a trusted peer that opens with the preface, and HTTP/1.1 to everyone on the same listener', async () => {
      await withServer(options, async ({ url, server }) => {
        const [body, version] = await curl(url, '--http2-prior-knowledge');
        assert.equal(version, '2');
        assert.equal((JSON.parse(body) as { httpVersion: string }).httpVersion, '2.0');
        assert.equal((await curl(url, '--http1.1'))[1], '1.1');
        await until(async () => (await server.stats()).actors.every((actor) => actor.connections === 0), 'both connections let go');
      });
    });

    it('gives a peer outside --forwarded-allow-ips HTTP/1.x, as if it were off; and off is the default', async () => {
      for (const changes of [{ forwardedAllowIps: '192.168.0.1' }, { http2Cleartext: 'off' as const }]) {
        await withServer({ ...options, ...changes }, async ({ url, server }) => {
          const [, version] = await curl(url, '--http2-prior-knowledge');
          assert.notEqual(version, '2', JSON.stringify(changes));
          assert.equal((await curl(url, '--http1.1'))[1], '1.1');
          assert.equal((await server.stats()).actorEndings.crashed, 0);
        });
      }
    });

    it('HAProxy as an h2c client (proto h2): 50 requests through it reach the app as HTTP/2', { skip: needs(haveHaproxy, 'haproxy') }, async () => {
      await withServer(options, async ({ url, server }) => {
        const proxy = await startHaproxy(url);
        try {
          const versions = new Set<string>();
          for (let i = 0; i < 50; i++) {
            const response = await fetch(`${proxy.url}/`);
            assert.equal(response.status, 200);
            versions.add(((await response.json()) as { httpVersion: string }).httpVersion);
          }
          assert.deepEqual([...versions], ['2.0']);
          const stats = await until(async () => {
            const now = await server.stats();
            return now.responses.byStatusClass['2xx'] === 50 && now;
          }, '50 responses counted');
          assert.equal(stats.actorEndings.crashed, 0);
        } finally {
          proxy.stop();
        }
      });
    });
  });
}

/** Opens a raw connection, sends an HTTP/1.1 request asking `Upgrade: h2c`, and returns what comes back first. */
function askRawUpgrade(url: string, afterHead: (socket: net.Socket) => void): Promise<{ received: string; closedAfterMs: number }> {
  const { port } = new URL(url);
  return new Promise((resolve, reject) => {
    const started = performance.now();
    let received = '';
    const socket = net.connect(Number(port), '127.0.0.1', () => {
      socket.write(
        'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQAoAAAAAIAAAAA\r\n\r\n',
      );
      afterHead(socket);
    });
    socket.setEncoding('latin1');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => resolve({ received, closedAfterMs: performance.now() - started }));
  });
}

for (const strategy of await strategies()) {
  describe(`cleartext HTTP/2 by Upgrade: h2c (${strategy})`, () => {
    const options = { app: fixture('tls-facts.js'), handoff: strategy, http2Cleartext: 'upgrade' } as const;
    /** curl's answers to `urls` on one connection (the first upgrades it), each as [body, HTTP version]. */
    const curl = async (flags: string[], ...urls: string[]): Promise<Array<[string, string]>> => {
      const written = '\n%{http_version}\n<<end>>\n';
      const { stdout } = await run('curl', ['-sS', ...flags, ...urls.flatMap((url) => ['-w', written, url])]).catch((error: { stdout: string }) => error);
      return stdout
        .split('\n<<end>>\n')
        .slice(0, urls.length)
        .map((answer) => answer.split('\n') as [string, string]);
    };
    const version = (body: string) => (JSON.parse(body) as { httpVersion: string }).httpVersion;

    it("switches a trusted peer's request to HTTP/2 (curl --http2, nghttp -u): the request is answered as stream 1, the next ones on the same connection", async () => {
      await withServer(options, async ({ url, server }) => {
        const answers = await curl(['--http2'], `${url}/`, `${url}/`, `${url}/`);
        assert.deepEqual(
          answers.map(([body, curlVersion]) => [version(body), curlVersion]),
          [
            ['2.0', '2'],
            ['2.0', '2'],
            ['2.0', '2'],
          ],
        );
        if (haveNghttp) {
          const { stdout } = await run('nghttp', ['-u', `${url}/`, `${url}/slow`]);
          assert.match(stdout, /"httpVersion":"2.0"/);
          assert.match(stdout, /slow/);
        }
        const stats = await until(async () => {
          const now = await server.stats();
          return now.actors.every((actor) => actor.connections === 0 && actor.requestsInFlight === 0) && now;
        }, 'every connection let go, nothing in flight');
        assert.equal(stats.responses.byStatusClass['2xx'], haveNghttp ? 5 : 3);
        assert.equal(stats.actorEndings.crashed, 0);
      });
    });

    it('answers over HTTP/1.1 a request with a body, one from a peer outside --forwarded-allow-ips, and any with prior-knowledge alone', async () => {
      await withServer(options, async ({ url }) => {
        const [[body, curlVersion]] = await curl(['--http2', '-d', 'a body'], `${url}/`);
        assert.deepEqual([version(body), curlVersion], ['1.1', '1.1']);
        const [[, priorKnowledge]] = await curl(['--http2-prior-knowledge', '--max-time', '3'], `${url}/`);
        assert.notEqual(priorKnowledge, '2', 'upgrade alone does not serve the preface');
      });
      for (const changes of [{ forwardedAllowIps: '192.168.0.1' }, { http2Cleartext: 'prior-knowledge' as const }]) {
        await withServer({ ...options, ...changes }, async ({ url }) => {
          const [[body, curlVersion]] = await curl(['--http2'], `${url}/`);
          assert.deepEqual([version(body), curlVersion], ['1.1', '1.1'], JSON.stringify(changes));
        });
      }
      await withServer({ ...options, http2Cleartext: 'both' }, async ({ url }) => {
        const [[upgraded], [known]] = [await curl(['--http2'], `${url}/`), await curl(['--http2-prior-knowledge'], `${url}/`)];
        assert.deepEqual([version(upgraded[0]), version(known[0])], ['2.0', '2.0']);
      });
    });

    it("keeps WebSocket upgrades for the app's ws server beside h2c ones, which the app never hears of", async () => {
      await withServer({ ...options, app: fixture('frameworks/http-server-ws.js') }, async ({ url, server }) => {
        const [[body, curlVersion]] = await curl(['--http2'], `${url}/hello`);
        assert.deepEqual([body, curlVersion], ['hello from http.Server', '2']);
        const { default: WebSocket } = await import('ws');
        const echo = await new Promise<string>((resolve, reject) => {
          const socket = new WebSocket(url.replace('http', 'ws'));
          socket.on('open', () => socket.send('ping'));
          socket.on('message', (message: Buffer) => {
            resolve(String(message));
            socket.close();
          });
          socket.on('error', reject);
        });
        assert.equal(echo, 'echo: ping');
        assert.equal((await server.stats()).actorEndings.crashed, 0);
      });
    });

    it('closes a switched connection whose client never sends the preface at --header-timeout, and one that sends something else at once', async () => {
      await withServer({ ...options, headerTimeout: 1 }, async ({ url, server }) => {
        const silent = await askRawUpgrade(url, () => {});
        assert.match(silent.received, /^HTTP\/1.1 101 Switching Protocols\r\n/);
        assert.ok(silent.closedAfterMs > 800 && silent.closedAfterMs < 4000, `closed after ${silent.closedAfterMs} ms`);
        const wrong = await askRawUpgrade(url, (socket) => socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n'));
        assert.match(wrong.received, /^HTTP\/1.1 101 Switching Protocols\r\n/);
        assert.ok(wrong.closedAfterMs < 800, `closed after ${wrong.closedAfterMs} ms`);
        await until(async () => (await server.stats()).actors.every((actor) => actor.connections === 0 && actor.requestsInFlight === 0), 'nothing left behind');
      });
    });
  });
}

describe('--http2-cleartext at the CLI', () => {
  it('refuses a value it does not know with one line and status 2', async () => {
    const result = await runCli(['-b', '127.0.0.1:0', '--http2-cleartext', 'sideways', fixture('tls-facts.js')]);
    assert.equal(result.status, 2, result.stderr);
    assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
    assert.match(result.stderr, /http2-cleartext/);
  });
});
