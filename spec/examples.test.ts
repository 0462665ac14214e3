/**
 * Every example, started the way its header says (the CLI), exercised as its users would: real HTTP
 * clients, `ws`, and a real Chromium for the pages.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import net from 'node:net';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { startCli, strategies } from './helpers/servers.js';
import { browserSkipReason, launchBrowser } from './helpers/browser.js';

/** A page's streams (SSE) stay open until the graceful timeout on stop, as long streams do: keep it short. */
async function withExample(file: string, strategy: string, body: (url: string) => Promise<void>): Promise<void> {
  const cli = await startCli(['-b', '127.0.0.1:0', '-w', '2', '--graceful-timeout', '3', '--handoff', strategy, `examples/${file}`]);
  try {
    await body(cli.url);
  } finally {
    const result = await cli.stop();
    assert.equal(result.status, 0, result.stderr);
    assert.doesNotMatch(result.stderr, /exited unexpectedly/, 'no actor died');
  }
}

function connect(url: string): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url);
    ws.once('open', () => resolve(ws));
    ws.once('error', reject);
  });
}

/** Completes a WebSocket handshake on a raw connection, then sends a frame no WebSocket allows; resolves when the server closes it. */
async function sendInvalidFrame(wsUrl: string): Promise<void> {
  const { hostname, port, pathname } = new URL(wsUrl);
  const socket = net.connect(Number(port), hostname);
  socket.on('error', () => {});
  const closed = once(socket, 'close');
  socket.write(
    `GET ${pathname} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
  );
  const [answer] = (await once(socket, 'data')) as [Buffer];
  assert.match(answer.toString('latin1'), /^HTTP\/1\.1 101/);
  socket.write(Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff])); // reserved bits and opcode, unmasked
  await closed;
}

for (const strategy of await strategies()) {
  describe(`examples (${strategy})`, () => {
    it('hello answers Hello, World!', () =>
      withExample('hello.js', strategy, async (url) => {
        assert.equal(await (await fetch(url)).text(), 'Hello, World!');
      }));

    it('websocket relays a message to clients on every actor, after a client sent an invalid frame', { timeout: 30_000 }, () =>
      withExample('websocket.js', strategy, async (url) => {
        const wsUrl = `${url.replace('http', 'ws')}/chat`;
        const clients = await Promise.all(Array.from({ length: 6 }, () => connect(wsUrl)));
        // The example listens for its sockets' errors: the bad client is closed and the actor serves on.
        for (let i = 0; i < 2; i++) await sendInvalidFrame(wsUrl);
        const received = clients.map(
          (ws) => new Promise<{ text: string; actor: number }>((resolve) => ws.once('message', (data) => resolve(JSON.parse(String(data))))),
        );
        clients[0].send('hello everyone');
        const messages = await Promise.all(received);
        assert.ok(messages.every((m) => m.text === 'hello everyone'));
        for (const ws of clients) ws.close();
      }),
    );

    it('websocket page: two browser tabs chat through the server', { skip: browserSkipReason() }, () =>
      withExample('websocket.js', strategy, async (url) => {
        const browser = await launchBrowser();
        try {
          // Several tabs, so some land on each actor; the message typed in one must appear in all.
          const tabs = await Promise.all(Array.from({ length: 4 }, () => browser.newPage()));
          for (const tab of tabs) {
            await tab.goto(url);
            await tab.locator('#status', { hasText: 'connected' }).waitFor();
          }
          await tabs[0].fill('#text', 'hi from tab one');
          await tabs[0].click('button');
          for (const tab of tabs) await tab.locator('#log p', { hasText: 'hi from tab one' }).waitFor({ timeout: 5000 });
          const actors = await Promise.all(tabs.map((tab) => tab.locator('#log p').first().getAttribute('title')));
          assert.ok(actors.every((title) => /relayed by actor thread \d+/.test(title ?? '')));
        } finally {
          await browser.close();
        }
      }),
    );

    it('upload-progress page: the bar moves while the upload streams in', { skip: browserSkipReason() }, () =>
      withExample('upload-progress.js', strategy, async (url) => {
        const browser = await launchBrowser();
        try {
          const page = await browser.newPage();
          await page.goto(url);
          await page.click('#generate');
          await page.locator('#status', { hasText: 'done: 16777216 bytes received' }).waitFor({ timeout: 15_000 });
          const log = (await page.evaluate('window.progressLog')) as number[];
          const intermediate = log.filter((received) => received > 0 && received < 16 * 1024 * 1024);
          assert.ok(intermediate.length >= 3, `progress reported while uploading: ${log.join(', ')}`);
          assert.deepEqual(
            [...intermediate].sort((a, b) => a - b),
            intermediate,
            'progress only grows',
          );
          assert.equal(await page.locator('#bar').evaluate((bar) => (bar as unknown as { value: number }).value), 16 * 1024 * 1024);
        } finally {
          await browser.close();
        }
      }),
    );

    it('sse holds a stream and sends events on it', () =>
      withExample('sse.js', strategy, async (url) => {
        const response = await fetch(`${url}/events?interval=50`);
        assert.equal(response.headers.get('content-type'), 'text/event-stream');
        const reader = response.body!.getReader();
        let text = '';
        while ((text.match(/event: tick/g) ?? []).length < 3) text += new TextDecoder().decode((await reader.read()).value);
        assert.match(text, /id: 1\nevent: tick\ndata: \{"id":1,/);
        await reader.cancel();
      }));

    it('test_keepalive reuses one connection across slow requests', () =>
      withExample('test_keepalive.js', strategy, async (url) => {
        const { Agent, request } = await import('undici');
        const agent = new Agent({ connections: 1 });
        const answers = [];
        for (const query of ['?sleep=200', '', '?sleep=100']) {
          const { body } = await request(`${url}/${query}`, { dispatcher: agent });
          answers.push((await body.json()) as { connection: string; requestsOnConnection: number });
        }
        assert.equal(new Set(answers.map((a) => a.connection)).size, 1, 'one connection');
        assert.deepEqual(
          answers.map((a) => a.requestsOnConnection),
          [1, 2, 3],
        );
        await agent.close();
      }));

    it('express-app serves JSON, a slow endpoint and a streamed download', () =>
      withExample('express-app.js', strategy, async (url) => {
        const created = await fetch(`${url}/notes`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ text: 'hi' }) });
        assert.equal(created.status, 201);
        const slow = await Promise.all([fetch(`${url}/slow?ms=300`), fetch(`${url}/slow?ms=300`)]);
        assert.deepEqual(await Promise.all(slow.map((r) => r.json())), [{ slept: 300 }, { slept: 300 }]);
        const download = await (await fetch(`${url}/download`)).text();
        assert.equal(download.split('\n').length, 10_001);
      }));

    it('koa-app routes and parses JSON bodies', () =>
      withExample('koa-app.js', strategy, async (url) => {
        const created = await fetch(`${url}/todos`, {
          method: 'POST',
          headers: { 'content-type': 'application/json' },
          body: JSON.stringify({ title: 'write tests' }),
        });
        assert.equal(created.status, 201);
        assert.deepEqual(await created.json(), { id: 1, title: 'write tests' });
        assert.deepEqual(await (await fetch(`${url}/slow?ms=50`)).json(), { slept: 50 });
      }));

    it('fastify-app answers JSON and a WebSocket route of @fastify/websocket', () =>
      withExample('fastify-app.js', strategy, async (url) => {
        assert.deepEqual(await (await fetch(`${url}/hello`)).json(), { hello: 'world' });
        const ws = await connect(`${url.replace('http', 'ws')}/shout`);
        const answer = new Promise<string>((resolve) => ws.once('message', (data) => resolve(String(data))));
        ws.send('quiet please');
        assert.equal(await answer, 'QUIET PLEASE');
        ws.close();
      }));

    it('nest-app serves its controller through Express', () =>
      withExample('nest-app.js', strategy, async (url) => {
        assert.deepEqual(await (await fetch(`${url}/cats`)).json(), [{ name: 'Tom' }, { name: 'Ginger' }]);
        assert.deepEqual(await (await fetch(`${url}/cats/Tom`)).json(), { name: 'Tom', found: true });
      }));

    it('socket-io page: two browser tabs on different actors chat over long-polling and WebSockets', { skip: browserSkipReason() }, async () => {
      // A long-poll whose tab has closed (FIN) ends at its next ping (25 s): keep the graceful stop short.
      const cli = await startCli([
        '-b',
        '127.0.0.1:0',
        '-w',
        '2',
        '--sticky-sessions',
        '--graceful-timeout',
        '3',
        '--handoff',
        strategy,
        'examples/socket-io.js',
      ]);
      const browser = await launchBrowser();
      try {
        // Two contexts: two browsers' worth of connections, so the tabs land on the two actors in turn.
        const tabs = await Promise.all([0, 1].map(async () => (await browser.newContext()).newPage()));
        for (const tab of tabs) {
          await tab.goto(cli.url);
          await tab.waitForFunction("document.getElementById('status').textContent === 'connected'");
        }
        const sessions = await Promise.all(tabs.map((tab) => tab.evaluate('socket.io.engine.id') as Promise<string>));
        assert.equal(new Set(sessions.map((sid) => sid.split('-')[0])).size, 2, `tabs on both actors: ${sessions.join(' ')}`);
        await tabs[0].fill('#text', 'hello from tab one');
        await tabs[0].click('button');
        for (const tab of tabs) await tab.waitForFunction("document.getElementById('log').textContent.includes('hello from tab one')");
      } finally {
        await browser.close();
        const result = await cli.stop();
        assert.equal(result.status, 0, result.stderr);
      }
    });

    it('hono-app routes, echoes JSON and streams', () =>
      withExample('hono-app.js', strategy, async (url) => {
        assert.deepEqual(await (await fetch(`${url}/greet/ada`)).json(), { hello: 'ada' });
        assert.equal(await (await fetch(`${url}/countdown`)).text(), '3\n2\n1\nliftoff\n');
      }));
  });
}
