/**
 * Real framework apps (spec/fixtures/frameworks/, written as each framework's docs write them) at volume:
 * through both hand-offs and `--use coroutine|sync`, each past 3× its request cap, over keep-alive and fresh
 * connections, with bodies, a thrown error, a streamed response, clients aborting mid-response and
 * pipelined requests cut by a reset. Afterwards the actor's own counters must be exact: nothing in flight,
 * `served` equal to the requests sent, and no actor ended. Then each framework's plugins (uploads,
 * static files with Range and ETag, compression, sessions, WebSockets on the app's own server).
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { describe, it } from 'node:test';
import { Agent, request } from 'undici';
import WebSocket from 'ws';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { example, fixture, runCli, startCli, strategies, withServer } from './helpers/servers.js';
import { until } from './helpers/wait.js';
import { parseResponses, type WireResponse } from './helpers/wire.js';
import { browserSkipReason, launchBrowser } from './helpers/browser.js';
import { APPS, ROUTES, STREAM_LINES, frameworkApp as app, graphql, type Routes } from './helpers/framework-apps.js';

const CAP = 6;
/** What `grainbows ctl --json status` says of the actors, summed. */
interface CtlTotals {
  served: number;
  inFlight: number;
  /** The ids of the actors serving: the same ids before and after means no actor ended. */
  actorIds: number[];
  /** Responses in the server's totals (the metrics' counters), and those with a 5xx status. */
  responses: number;
  serverErrors: number;
}

/** Reads the counters as an operator does: `grainbows ctl --pid FILE --json status`. */
async function ctlTotals(pidfile: string): Promise<CtlTotals> {
  const status = await runCli(['ctl', '--pid', pidfile, '--json', 'status']);
  assert.equal(status.status, 0, status.stderr);
  const { actors, responses } = JSON.parse(status.stdout).result as {
    actors: Array<{ actorId: number; requestsServed: number; requestsInFlight: number }>;
    responses: { count: number; byStatusClass: Record<string, number> };
  };
  return {
    served: actors.reduce((sum, actor) => sum + actor.requestsServed, 0),
    inFlight: actors.reduce((sum, actor) => sum + actor.requestsInFlight, 0),
    actorIds: actors.map((actor) => actor.actorId),
    responses: responses.count,
    serverErrors: responses.byStatusClass['5xx'],
  };
}

/** Waits for the counters to settle, then asserts them exact: each request counted once, as served and in the metrics' totals. */
async function assertSettled(pidfile: string, sent: number, actorIds: number[], serverErrors: number): Promise<void> {
  await until(async () => {
    const now = await ctlTotals(pidfile);
    return now.inFlight === 0 && now.served >= sent;
  }, `in flight 0 and ${sent} served`).catch(() => {});
  assert.deepEqual(await ctlTotals(pidfile), { served: sent, inFlight: 0, actorIds, responses: sent, serverErrors });
}

/** Sends a request on a fresh connection; resolves with the first bytes answered, then resets the connection. */
async function abortAfterFirstBytes(port: number, path: string, accept = '*/*'): Promise<string> {
  const socket = net.connect(port, '127.0.0.1');
  socket.write(`GET ${path} HTTP/1.1\r\nHost: x\r\nAccept: ${accept}\r\n\r\n`);
  const [chunk] = (await once(socket, 'data')) as [Buffer];
  socket.resetAndDestroy();
  return chunk.toString('latin1');
}

/** Three pipelined requests in one write (a slow one first), the connection reset 200 ms later. */
async function pipelineThenReset(port: number, routes: Routes): Promise<void> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  const get = (path: string) => `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`;
  socket.write(get(routes.slow) + get(routes.hello) + get(routes.hello));
  await new Promise((resolve) => setTimeout(resolve, 200));
  socket.resetAndDestroy();
}

/** Every kind of traffic, returning how many requests it sent. */
async function driveVolume(url: string, port: number, routes: Routes, cap: number): Promise<number> {
  let sent = 0;
  const many = 3 * cap + 2;
  const agent = new Agent({ connections: 4, keepAliveTimeout: 30_000 });
  try {
    // Keep-alive: more requests at once than the cap, over four connections.
    const keptAlive = await Promise.all(
      Array.from({ length: many }, async () => {
        const response = await request(`${url}${routes.hello}`, { dispatcher: agent });
        return [response.statusCode, await response.body.text()] as const;
      }),
    );
    sent += many;
    for (const [status, body] of keptAlive) {
      assert.equal(status, 200);
      assert.match(body, /hello/);
    }
    // Fresh connections, all at once, each with a JSON body.
    const fresh = await Promise.all(
      Array.from({ length: many }, async (_, i) => {
        const { path, body } = routes.echo(i);
        const response = await fetch(`${url}${path}`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', connection: 'close' },
          body: JSON.stringify(body),
        });
        return [response.status, await response.json()] as const;
      }),
    );
    sent += many;
    fresh.forEach(([status, body], i) => {
      assert.equal(status, 200);
      assert.deepEqual(body, routes.echo(i).answer);
    });
    // A thrown error, twice on one keep-alive connection.
    for (let i = 0; i < 2; i++) {
      const response = await request(`${url}${routes.boom.path}`, { dispatcher: agent });
      await response.body.text();
      sent++;
      assert.equal(response.statusCode, routes.boom.status);
    }
    // Streamed responses.
    for (let i = 0; i < 2; i++) {
      const response = await request(`${url}${routes.stream.path}`, { dispatcher: agent, headers: routes.stream.headers });
      const body = await response.body.text();
      sent++;
      assert.equal(response.statusCode, 200);
      assert.equal(routes.stream.parts(body), STREAM_LINES);
    }
  } finally {
    await agent.close();
  }
  // Clients that go away mid-response.
  for (let i = 0; i < 2; i++) {
    assert.match(await abortAfterFirstBytes(port, routes.slow, routes.stream.headers?.accept), /^HTTP\/1\.1 200/);
    sent++;
  }
  // Pipelined requests, the connection reset while the first is still being answered.
  await pipelineThenReset(port, routes);
  sent += 3;
  return sent;
}

for (const handoff of await strategies()) {
  describe(`frameworks at volume (${handoff})`, () => {
    for (const framework of APPS) {
      for (const use of ['coroutine', 'sync'] as const) {
        const cap = use === 'sync' ? 1 : CAP;
        it(`${framework.name}, --use ${use}: past 3x the cap every request is counted once and settled`, { timeout: 60_000 }, async () => {
          const pidfile = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-volume-')), 'server.pid');
          const cli = await startCli([
            '-b',
            '127.0.0.1:0',
            '-w',
            '1',
            '--worker-connections',
            String(CAP),
            '--use',
            use,
            '--handoff',
            handoff,
            '-p',
            pidfile,
            app(framework.file),
          ]);
          try {
            await until(() => existsSync(pidfile), 'the pidfile');
            const { actorIds } = await ctlTotals(pidfile);
            const routes = framework.routes ?? ROUTES;
            const sent = await driveVolume(cli.url, Number(new URL(cli.url).port), routes, cap);
            // The two thrown errors are the only 5xx responses (GraphQL answers them 200).
            const serverErrors = routes.boom.status >= 500 ? 2 : 0;
            await assertSettled(pidfile, sent, actorIds, serverErrors);
            // The actor still answers, and counts on.
            const response = await fetch(`${cli.url}${routes.hello}`);
            assert.equal(response.status, 200);
            await response.text();
            await assertSettled(pidfile, sent + 1, actorIds, serverErrors);
            // Nothing in flight: a graceful stop has nothing to wait for.
            const stopped = await cli.stop('SIGTERM');
            assert.equal(stopped.status, 0);
            assert.doesNotMatch(stopped.stderr, /exited unexpectedly|terminated after hanging/);
          } finally {
            await cli.stop('SIGKILL');
          }
        });
      }
    }
  });
}

for (const handoff of await strategies()) {
  describe(`frameworks past --max-requests, with an access log (${handoff})`, () => {
    for (const framework of APPS) {
      it(
        `${framework.name}: the actor is recycled after 15 responses, again and again, and each request gets its access log line`,
        { timeout: 60_000 },
        async () => {
          const routes = framework.routes ?? ROUTES;
          const file = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-frameworks-')), 'access.log');
          await withServer(
            { app: app(framework.file), handoff, workers: 1, maxRequests: 15, accessLogfile: file, accessLogformat: 'json' },
            async ({ server, url, logs }) => {
              let started = 0;
              server.on('actor-start', () => started++);
              // Requests go on while a replacement boots (the old actor serves until it is ready), so how many
              // requests two recycles take depends on the machine: send until two replacements have started.
              // Every 5th request on a new connection; a request unanswered in 10 s fails with the server's log.
              let total = 0;
              const agent = new Agent({ connections: 1, keepAliveTimeout: 30_000 });
              try {
                while (started < 2) {
                  assert.ok(total < 400, `two recycles within 400 requests (${started} so far)`);
                  const response = await request(`${url}${routes.hello}`, {
                    dispatcher: agent,
                    headers: total % 5 === 0 ? { connection: 'close' } : {},
                    headersTimeout: 10_000,
                    bodyTimeout: 10_000,
                  }).catch((error: Error) => {
                    throw new Error(`request ${total + 1} failed: ${error.message}\n${logs.slice(-20).join('')}`, { cause: error });
                  });
                  total++;
                  assert.equal(response.statusCode, 200);
                  await response.body.text();
                }
              } finally {
                await agent.close();
              }
              const lines = await until(() => {
                const text = existsSync(file) ? readFileSync(file, 'utf8') : '';
                const parsed = text
                  .split('\n')
                  .filter(Boolean)
                  .map((line) => JSON.parse(line) as { status: number; url: string });
                return parsed.length >= total && parsed;
              }, `${total} access log lines`);
              assert.equal(lines.length, total);
              assert.ok(lines.every((line) => line.status === 200 && line.url === routes.hello));
            },
          );
        },
      );
    }
  });
}

const STATIC_FILE = readFileSync(fixture('frameworks/static/file.txt'));

/** A multipart upload of `size` bytes as field `file`; resolves with the app's JSON answer. */
async function upload(url: string, size: number): Promise<{ status: number; body: unknown }> {
  const form = new FormData();
  form.append('file', new Blob([Buffer.alloc(size, 'u')]), 'photo.bin');
  const response = await fetch(`${url}/upload`, { method: 'POST', body: form });
  return { status: response.status, body: await response.json() };
}

/** Range and conditional requests against /static/file.txt. */
async function assertStaticFile(url: string): Promise<void> {
  const whole = await fetch(`${url}/static/file.txt`);
  assert.equal(whole.status, 200);
  assert.deepEqual(Buffer.from(await whole.arrayBuffer()), STATIC_FILE);
  const etag = whole.headers.get('etag');
  assert.ok(etag, 'an ETag');
  const partial = await fetch(`${url}/static/file.txt`, { headers: { range: 'bytes=0-9' } });
  assert.equal(partial.status, 206);
  assert.equal(partial.headers.get('content-range'), `bytes 0-9/${STATIC_FILE.length}`);
  assert.equal(await partial.text(), STATIC_FILE.subarray(0, 10).toString());
  const unchanged = await request(`${url}/static/file.txt`, { headers: { 'if-none-match': etag } });
  await unchanged.body.dump();
  assert.equal(unchanged.statusCode, 304);
}

/** A compressed answer, as a client asking only for gzip gets it. */
async function assertGzipped(url: string, path: string, expected: Buffer): Promise<void> {
  const response = await request(`${url}${path}`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(response.headers['content-encoding'], 'gzip');
  assert.deepEqual(gunzipSync(Buffer.from(await response.body.arrayBuffer())), expected);
}

/** Opens a WebSocket, sends one message and resolves with the answer. */
async function websocketEcho(url: string): Promise<string> {
  const socket = new WebSocket(url.replace(/^http/, 'ws'));
  await once(socket, 'open');
  socket.send('ping');
  const [answer] = (await once(socket, 'message')) as [Buffer];
  socket.close();
  return answer.toString();
}

for (const handoff of await strategies()) {
  describe(`framework features (${handoff})`, () => {
    it('Express: multer uploads, express.static Range and ETag, compression, express-session', async () => {
      await withServer({ app: app('express.js'), handoff, workers: 1 }, async ({ url }) => {
        assert.deepEqual(await upload(url, 200_000), { status: 200, body: { name: 'photo.bin', size: 200_000 } });
        await assertStaticFile(url);
        await assertGzipped(url, '/static/file.txt', STATIC_FILE);
        const first = await fetch(`${url}/visits`);
        const cookie = first.headers.get('set-cookie')?.split(';')[0];
        assert.ok(cookie, 'a session cookie');
        assert.deepEqual(await first.json(), { visits: 1 });
        const second = await fetch(`${url}/visits`, { headers: { cookie } });
        assert.deepEqual(await second.json(), { visits: 2 });
      });
    });

    it('Koa: koa-body multipart uploads, @koa/router 405 for a method it does not route', async () => {
      await withServer({ app: app('koa.js'), handoff, workers: 1 }, async ({ url }) => {
        assert.deepEqual(await upload(url, 200_000), { status: 200, body: { name: 'photo.bin', size: 200_000 } });
        const refused = await fetch(`${url}/hello`, { method: 'DELETE' });
        assert.equal(refused.status, 405);
        assert.match(refused.headers.get('allow') ?? '', /GET/);
      });
    });

    it('Fastify: multipart, static Range and ETag, compress, @fastify/websocket, onListen and onClose hooks', async () => {
      const closeLog = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-fastify-')), 'closed.txt');
      process.env.FASTIFY_CLOSE_LOG = closeLog;
      try {
        await withServer({ app: app('fastify.js'), handoff, workers: 2 }, async ({ url, port }) => {
          assert.deepEqual(await upload(url, 200_000), { status: 200, body: { name: 'photo.bin', size: 200_000 } });
          await assertStaticFile(url);
          await assertGzipped(url, '/static/file.txt', STATIC_FILE);
          assert.equal(await websocketEcho(`${url}/ws`), 'echo: ping');
          // Each actor's onListen hook saw the address clients use.
          const heard = await until(async () => {
            const body = (await (await fetch(`${url}/lifecycle`)).json()) as { onListen: { port: number } | null };
            return body.onListen;
          }, 'the onListen hook');
          assert.equal(heard.port, port);
          assert.equal(existsSync(closeLog), false);
        });
        // server.close() stopped both actors: each ran Fastify's onClose hooks.
        assert.equal(readFileSync(closeLog, 'utf8'), 'onClose\nonClose\n');
      } finally {
        delete process.env.FASTIFY_CLOSE_LOG;
      }
    });

    it('Hono: serveStatic', async () => {
      await withServer({ app: app('hono.js'), handoff, workers: 1, cwd: fixture('frameworks') }, async ({ url }) => {
        const response = await fetch(`${url}/static/file.txt`);
        assert.equal(response.status, 200);
        assert.deepEqual(Buffer.from(await response.arrayBuffer()), STATIC_FILE);
      });
    });

    it("an exported http.Server: ws's WebSocketServer({ server }) answers upgrades on every actor", async () => {
      await withServer({ app: app('http-server-ws.js'), handoff, workers: 2 }, async ({ url }) => {
        const answers = await Promise.all(Array.from({ length: 8 }, () => websocketEcho(url)));
        assert.deepEqual(answers, Array(8).fill('echo: ping'));
        const plain = await fetch(`${url}/hello`);
        assert.equal(await plain.text(), 'hello from http.Server');
      });
    });

    it('graphql-yoga: a subscription streams as server-sent events', async () => {
      await withServer({ app: app('yoga.js'), handoff, workers: 1 }, async ({ url }) => {
        const response = await fetch(`${url}${graphql('subscription { countdown(from: 3) }')}`, { headers: { accept: 'text/event-stream' } });
        assert.equal(response.status, 200);
        assert.match(response.headers.get('content-type') ?? '', /^text\/event-stream/);
        const events = (await response.text()).split('\n').filter((line) => line.startsWith('data: {'));
        assert.deepEqual(
          events.map((line) => JSON.parse(line.slice(6))),
          [3, 2, 1, 0].map((countdown) => ({ data: { countdown } })),
        );
      });
    });
  });
}

/** The next `event` a socket.io client emits, with its arguments. */
function nextEvent(client: ClientSocket, event: string): Promise<unknown[]> {
  return new Promise((resolve) => client.once(event, (...args: unknown[]) => resolve(args)));
}

/** socket.io clients of spec/fixtures/frameworks/socket-io.js, each with the actor its session lives on. */
async function connectClients(url: string, count: number, transports: string[]): Promise<Array<{ client: ClientSocket; actor: string }>> {
  return Promise.all(
    Array.from({ length: count }, async () => {
      const client = ioClient(url, { transports, forceNew: true, reconnection: false });
      await nextEvent(client, 'connect');
      const { sid } = (await client.timeout(5000).emitWithAck('whoami')) as { sid: string };
      return { client, actor: /^g(\d+)-/.exec(sid)?.[1] ?? `no actor in ${sid}` };
    }),
  );
}

/** One client shouts; resolves with how many clients heard it. */
async function broadcastReach(clients: ClientSocket[]): Promise<number> {
  const heard = clients.map((client) => nextEvent(client, 'heard').then(([text]) => text as string));
  clients[0].emit('shout', 'to everyone');
  const texts = await Promise.all(heard);
  return texts.filter((text) => text === 'to everyone').length;
}

for (const handoff of await strategies()) {
  describe(`socket.io across actors (${handoff})`, () => {
    it('websocket transport: io.emit reaches the clients of every actor', async () => {
      await withServer({ app: app('socket-io.js'), handoff, workers: 2 }, async ({ url }) => {
        const clients = await connectClients(url, 20, ['websocket']);
        try {
          assert.deepEqual(new Set(clients.map(({ actor }) => actor)).size, 2, 'clients on both actors');
          assert.equal(await broadcastReach(clients.map(({ client }) => client)), 20);
        } finally {
          for (const { client } of clients) client.disconnect();
        }
      });
    });

    it('long-polling and the default transports with --sticky-sessions: every request reaches its session', async () => {
      await withServer({ app: app('socket-io.js'), handoff, workers: 2, stickySessions: true }, async ({ url }) => {
        const clients = [...(await connectClients(url, 10, ['polling'])), ...(await connectClients(url, 10, ['polling', 'websocket']))];
        try {
          assert.deepEqual(new Set(clients.map(({ actor }) => actor)).size, 2, 'clients on both actors');
          // Several rounds, each needing polls and posts on fresh connections to find their session.
          for (let round = 0; round < 3; round++) assert.equal(await broadcastReach(clients.map(({ client }) => client)), 20);
        } finally {
          for (const { client } of clients) client.disconnect();
        }
      });
    });
  });
}

/** Sends one request on an open connection and reads one whole response (Content-Length bodies). */
async function requestOn(socket: net.Socket, head: string): Promise<WireResponse> {
  socket.write(head);
  let raw = Buffer.alloc(0);
  for (;;) {
    const [chunk] = (await once(socket, 'data')) as [Buffer];
    raw = Buffer.concat([raw, chunk]);
    const [response] = parseResponses(raw);
    if (response) return response;
  }
}

for (const handoff of await strategies()) {
  describe(`--sticky-sessions on kept-alive connections (${handoff})`, () => {
    it("a request and an upgrade for another actor's session are answered by that actor, on the same connection (a proxy's shared upstream connection)", async () => {
      await withServer({ app: app('socket-io.js'), handoff, workers: 2, stickySessions: true }, async ({ port }) => {
        // Handshakes on new connections until there are sessions on both actors, each connection kept open.
        const sessions = new Map<string, { sid: string; socket: net.Socket }>();
        for (let i = 0; i < 20 && sessions.size < 2; i++) {
          const socket = net.connect(port, '127.0.0.1');
          await once(socket, 'connect');
          const handshake = await requestOn(socket, 'GET /socket.io/?EIO=4&transport=polling HTTP/1.1\r\nHost: x\r\n\r\n');
          assert.equal(handshake.status, 200);
          const { sid } = JSON.parse(handshake.body.toString().slice(1)) as { sid: string };
          const actor = sid.split('-')[0];
          if (sessions.has(actor)) socket.destroy();
          else sessions.set(actor, { sid, socket });
        }
        assert.equal(sessions.size, 2, 'sessions on both actors');
        const [first, second] = [...sessions.values()];
        try {
          // The second actor's session, on the connection the first actor holds: socket.io's CONNECT packet
          // (a POST with a body), then the poll that reads its answer. Only the session's actor knows it.
          const secondPath = `/socket.io/?EIO=4&transport=polling&sid=${second.sid}`;
          const posted = await requestOn(first.socket, `POST ${secondPath} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n40`);
          assert.equal(posted.status, 200);
          assert.equal(posted.body.toString(), 'ok');
          const polled = await requestOn(first.socket, `GET ${secondPath} HTTP/1.1\r\nHost: x\r\n\r\n`);
          assert.equal(polled.status, 200);
          assert.match(polled.body.toString(), /^40\{"sid":/, "the namespace's CONNECT answer, from the session's actor");
          assert.notEqual(polled.headers.connection, 'close', 'the connection stays open');
          // The same connection still serves its own actor's session.
          const own = await requestOn(
            first.socket,
            `POST /socket.io/?EIO=4&transport=polling&sid=${first.sid} HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\n40`,
          );
          assert.equal(own.status, 200);
          assert.equal(own.body.toString(), 'ok');
          // engine.io's switch to WebSocket for the second actor's session, on the same connection: the
          // session's actor answers the probe.
          const ws = new WebSocket(`ws://127.0.0.1:${port}/socket.io/?EIO=4&transport=websocket&sid=${second.sid}`, {
            createConnection: () => first.socket,
          });
          await once(ws, 'open');
          const probed = once(ws, 'message');
          ws.send('2probe');
          assert.equal(String(((await probed) as [Buffer])[0]), '3probe', "the probe's answer, from the session's actor");
          ws.terminate();
        } finally {
          for (const { socket } of sessions.values()) socket.destroy();
        }
      });
    });
  });
}

describe('socket.io long-polling without --sticky-sessions', () => {
  it('is refused by socket.io on the wrong actor, and the server says which setting fixes it', async () => {
    const server = await startCli(['-b', '127.0.0.1:0', '-w', '2', app('socket-io.js')]);
    try {
      const clients = Array.from({ length: 6 }, () => ioClient(server.url, { transports: ['polling'], forceNew: true, reconnection: false }));
      await server.waitFor(
        /grainbows\/socket\.io: a request for a session of actor \d+ reached actor \d+ and was refused \(400\): run grainbows with --sticky-sessions/,
      );
      for (const client of clients) client.disconnect();
    } finally {
      await server.stop();
    }
  });
});

describe('socket.io long-polling from a browser with --sticky-sessions', { skip: browserSkipReason() }, () => {
  for (const handoff of ['relay', 'transfer'] as const) {
    it(`clients whose requests share the browser's keep-alive connections each reach their session (${handoff})`, async (t) => {
      if (!(await strategies()).includes(handoff)) return t.skip(`no ${handoff} hand-off on this runtime`);
      await withServer({ app: app('socket-io.js'), handoff, workers: 2, stickySessions: true }, async ({ url }) => {
        const browser = await launchBrowser();
        try {
          const page = await browser.newPage();
          await page.goto(url);
          // Which actor each session lands on is the browser's choice of connection (often all on one); the
          // raw-socket test below sends a request to the wrong actor on purpose.
          for (let round = 0; round < 3; round++) {
            const { actors, heard } = (await page.evaluate('run(4)')) as { actors: string[]; heard: number };
            assert.equal(heard, 3 * 4, `round ${round}: every client heard every shout (sessions ${actors.join(' ')})`);
          }
        } finally {
          await browser.close();
        }
      });
    });
  }
});

describe('examples/express-app.js from the CLI, -w 1 and default settings', () => {
  it('serves 10,000 requests and ctl status counts each one, with nothing left in flight', { timeout: 120_000 }, async () => {
    const pidfile = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-express-')), 'express.pid');
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '1', '-p', pidfile, example('express-app.js')]);
    const ctl = (...args: string[]) => runCli(['ctl', '--pid', pidfile, ...args]);
    const total = 10_000;
    try {
      await until(() => existsSync(pidfile), 'the pidfile');
      const agent = new Agent({ connections: 32, keepAliveTimeout: 30_000 });
      let next = 0;
      let ok = 0;
      // 32 clients back to back; every 20th request on a fresh connection, every 10th a POST with a body.
      await Promise.all(
        Array.from({ length: 32 }, async () => {
          while (next < total) {
            const n = next++;
            const post = n % 10 === 0;
            const response = await request(`${cli.url}/notes`, {
              dispatcher: agent,
              method: post ? 'POST' : 'GET',
              headers: { ...(post ? { 'content-type': 'application/json' } : {}), ...(n % 20 === 0 ? { connection: 'close' } : {}) },
              body: post ? JSON.stringify({ text: `note ${n}` }) : undefined,
            });
            await response.body.dump();
            if (response.statusCode === (post ? 201 : 200)) ok++;
          }
        }),
      );
      await agent.close();
      assert.equal(ok, total);
      const read = async () => {
        const status = await ctl('--json', 'status');
        assert.equal(status.status, 0, status.stderr);
        const { actors } = JSON.parse(status.stdout).result as { actors: Array<{ requestsServed: number; requestsInFlight: number }> };
        return {
          served: actors.reduce((sum, a) => sum + a.requestsServed, 0),
          inFlight: actors.reduce((sum, a) => sum + a.requestsInFlight, 0),
          actors: actors.length,
        };
      };
      await until(async () => (await read()).served === total, `${total} served`).catch(() => {});
      assert.deepEqual(await read(), { served: total, inFlight: 0, actors: 1 });
      const stopped = await cli.stop('SIGTERM');
      assert.equal(stopped.status, 0);
    } finally {
      await cli.stop('SIGKILL');
    }
  });
});
