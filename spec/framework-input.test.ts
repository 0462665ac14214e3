/**
 * Hostile and broken clients against the real framework apps (spec/helpers/framework-apps.ts): no client
 * input may end an actor, whatever the app does with it. Each app, under each hand-off, gets:
 * - gunicorn's whole corpus (valid and invalid requests), as it is and aimed at the app's own routes;
 * - mutations of those requests (spec/helpers/mutations.ts);
 * - what the parser in front of the app cannot stop, because it arrives after the app has the request:
 *   bodies cut short or broken mid-stream, malformed and deeply nested JSON, broken and abandoned uploads,
 *   undecodable targets, hosts no URL can hold, unsatisfiable ranges, unparsable session cookies,
 *   WebSocket handshakes that fail or are cut, frames of garbage after a handshake, socket.io requests
 *   for sessions that do not exist.
 * Each connection the client half-closes must end with a response or a close. Afterwards no actor has
 * crashed, the first actor still serves and answers, and it holds no connection and no request.
 */
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT, strategies, withServer } from './helpers/servers.js';
import { APPS, ROUTES, frameworkApp, type Routes } from './helpers/framework-apps.js';
import { mutate, random, sendAndHalfClose, type Ending } from './helpers/mutations.js';
import { until } from './helpers/wait.js';

const MUTATIONS = 120;
const DEADLINE_MS = 5000;

const corpus = (
  JSON.parse(readFileSync(path.resolve(ROOT, 'spec/fixtures/conformance/gunicorn-requests.json'), 'utf8')) as Array<{
    raw_base64: string;
    name: string;
  }>
)
  .filter((entry) => !entry.name.includes('/pp_')) // PROXY protocol cases need --proxy-protocol
  .map((entry) => Buffer.from(entry.raw_base64, 'base64'));

/** The app's routes, and those some fixtures add (uploads, static files, sessions, WebSockets, socket.io). */
function targetsOf(routes: Routes): string[] {
  return [
    routes.hello,
    routes.echo(1).path,
    routes.boom.path,
    routes.stream.path,
    '/upload',
    '/static/file.txt',
    '/visits',
    '/ws',
    '/socket.io/?EIO=4&transport=polling',
  ];
}

/** `raw` with the target of its request line replaced by `target`; null when its first line is no request line. */
function aimedAt(raw: Buffer, target: string): Buffer | null {
  const text = raw.toString('latin1');
  const line = /^(\S+) (\S+)( HTTP\/[^\r\n]*)/.exec(text);
  if (!line) return null;
  return Buffer.from(`${line[1]} ${target}${line[3]}${text.slice(line[0].length)}`, 'latin1');
}

/** One connection of a targeted attack: what is written (one write per part, 20 ms apart) and how it ends. */
interface Attack {
  name: string;
  parts: Array<string | Buffer>;
  /** 'half-close': the server must answer or close. 'reset': the client goes away once the parts are sent. */
  then: 'half-close' | 'reset';
}

const request = (method: string, target: string, headers: string[], body: string | Buffer = ''): Buffer =>
  Buffer.concat([Buffer.from(`${method} ${target} HTTP/1.1\r\n${['Host: x', ...headers].join('\r\n')}\r\n\r\n`, 'latin1'), Buffer.from(body)]);

const WEBSOCKET_HEADERS = ['Upgrade: websocket', 'Connection: Upgrade', 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ=='];
const BOUNDARY = 'grainbowsboundary';
const multipartStart = `--${BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="photo.bin"\r\nContent-Type: application/octet-stream\r\n\r\n`;

function attacksOn(routes: Routes): Attack[] {
  const echo = routes.echo(7).path;
  const json = ['Content-Type: application/json'];
  const nested = `${'['.repeat(10_000)}${']'.repeat(10_000)}`;
  return [
    { name: 'a body cut short, then a reset', parts: [request('POST', echo, [...json, 'Content-Length: 100'], '{"n":1')], then: 'reset' },
    {
      name: 'a chunked body broken mid-stream',
      parts: [request('POST', echo, [...json, 'Transfer-Encoding: chunked'], '6\r\n{"n":1\r\n'), 'zz\r\n\r\n'],
      then: 'half-close',
    },
    { name: 'malformed JSON', parts: [request('POST', echo, [...json, 'Content-Length: 5'], '{"n":')], then: 'half-close' },
    { name: 'JSON nested 10,000 deep', parts: [request('POST', echo, [...json, `Content-Length: ${nested.length}`], nested)], then: 'half-close' },
    {
      name: 'a body trickled, then a reset while the app reads it',
      parts: [request('POST', echo, [...json, 'Content-Length: 100000'], '{"n":"'), ...Array.from({ length: 5 }, () => 'x'.repeat(1000))],
      then: 'reset',
    },
    {
      name: 'an upload cut short, then a reset',
      parts: [
        request('POST', '/upload', [`Content-Type: multipart/form-data; boundary=${BOUNDARY}`, 'Content-Length: 200000'], multipartStart),
        'u'.repeat(1000),
      ],
      then: 'reset',
    },
    {
      name: 'an upload whose boundary never comes',
      parts: [
        request(
          'POST',
          '/upload',
          [`Content-Type: multipart/form-data; boundary=${BOUNDARY}`, `Content-Length: ${multipartStart.length + 10}`],
          `${multipartStart}uuuuuuuuuu`,
        ),
      ],
      then: 'half-close',
    },
    {
      name: 'an upload with a boundary the body does not use',
      parts: [request('POST', '/upload', ['Content-Type: multipart/form-data; boundary=other', `Content-Length: ${multipartStart.length}`], multipartStart)],
      then: 'half-close',
    },
    {
      name: 'Expect: 100-continue, then a reset instead of the body',
      parts: [request('POST', '/upload', [`Content-Type: multipart/form-data; boundary=${BOUNDARY}`, 'Content-Length: 1000000', 'Expect: 100-continue'])],
      then: 'reset',
    },
    { name: 'an undecodable target', parts: [request('GET', '/%E0%A4%A', [])], then: 'half-close' },
    { name: 'an undecodable query', parts: [request('GET', `${routes.hello}${routes.hello.includes('?') ? '&' : '?'}q=%ZZ%`, [])], then: 'half-close' },
    { name: 'a Host no URL can hold', parts: [Buffer.from(`GET ${routes.hello} HTTP/1.1\r\nHost: a b\r\n\r\n`)], then: 'half-close' },
    { name: 'an unclosed IPv6 Host', parts: [Buffer.from(`GET ${routes.hello} HTTP/1.1\r\nHost: [::1\r\n\r\n`)], then: 'half-close' },
    { name: 'no Host at all', parts: [Buffer.from(`GET ${routes.hello} HTTP/1.1\r\n\r\n`)], then: 'half-close' },
    { name: 'an absolute-form target for another host', parts: [request('GET', `http://other.example${routes.hello}`, [])], then: 'half-close' },
    { name: 'an unsatisfiable range', parts: [request('GET', '/static/file.txt', ['Range: bytes=999999-'])], then: 'half-close' },
    { name: 'a range that is no range', parts: [request('GET', '/static/file.txt', ['Range: bytes=--1,abc'])], then: 'half-close' },
    { name: 'a session cookie that does not decode', parts: [request('GET', '/visits', ['Cookie: connect.sid=s%3A%ZZ.bad; koa.sess=%%'])], then: 'half-close' },
    {
      name: 'an Accept-Encoding of nonsense',
      parts: [request('GET', routes.stream.path, ['Accept-Encoding: gzip;q=abc, br;q=, zstd, *;q=0'])],
      then: 'half-close',
    },
    { name: 'a WebSocket handshake without a key', parts: [request('GET', '/ws', WEBSOCKET_HEADERS.slice(0, 3))], then: 'half-close' },
    { name: 'a WebSocket handshake, reset before its answer', parts: [request('GET', '/ws', WEBSOCKET_HEADERS)], then: 'reset' },
    {
      name: 'a WebSocket handshake, then frames of garbage',
      parts: [
        request('GET', '/ws', WEBSOCKET_HEADERS),
        Buffer.from([0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0, 1, 2, 3]),
        Buffer.from([0x81, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]),
      ],
      then: 'half-close',
    },
    {
      name: 'a socket.io WebSocket handshake, then garbage',
      parts: [request('GET', '/socket.io/?EIO=4&transport=websocket', WEBSOCKET_HEADERS), Buffer.from('not a frame')],
      then: 'half-close',
    },
    {
      name: 'a socket.io poll for a session that does not exist, with a garbage body',
      parts: [request('POST', '/socket.io/?EIO=4&transport=polling&sid=bogus', ['Content-Type: text/plain', 'Content-Length: 9'], '4garbage\x1e')],
      then: 'half-close',
    },
    { name: 'a socket.io handshake, then a reset', parts: [request('GET', '/socket.io/?EIO=4&transport=polling', [])], then: 'reset' },
    {
      name: '64 pipelined requests, GETs and POSTs with bodies, in one write',
      parts: [
        Buffer.concat(
          Array.from({ length: 64 }, (_, i) => (i % 2 ? request('GET', routes.hello, []) : request('POST', echo, [...json, 'Content-Length: 7'], '{"n":1}'))),
        ),
      ],
      then: 'half-close',
    },
    { name: 'a head trickled, then a reset', parts: [...`GET ${routes.hello} HTTP/1.1\r\nHo`].map((byte) => byte), then: 'reset' },
  ];
}

type AttackEnding = Ending | 'reset by the client';

async function carryOut(port: number, attack: Attack): Promise<AttackEnding> {
  const socket = net.connect(port, '127.0.0.1');
  socket.on('error', () => {});
  let received = '';
  socket.on('data', (chunk: Buffer) => (received += chunk.toString('latin1')));
  // Not events.once: it rejects on 'error', and a server that closes with bytes unread resets the connection (a close too).
  const closed = new Promise<boolean>((resolve) => socket.once('close', () => resolve(true)));
  await once(socket, 'connect');
  for (const part of attack.parts) {
    if (socket.destroyed) break;
    socket.write(part);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  if (attack.then === 'reset') {
    socket.resetAndDestroy();
    return 'reset by the client';
  }
  socket.end();
  const ended = await Promise.race([closed, new Promise<false>((resolve) => setTimeout(() => resolve(false), DEADLINE_MS))]);
  socket.destroy();
  if (received.startsWith('HTTP/1.')) return 'response';
  return ended ? 'closed' : 'hung';
}

/** Runs `tasks` eight at a time. */
async function inBatches<T>(tasks: Array<() => Promise<T>>): Promise<T[]> {
  const results: T[] = [];
  for (let i = 0; i < tasks.length; i += 8) results.push(...(await Promise.all(tasks.slice(i, i + 8).map((task) => task()))));
  return results;
}

for (const handoff of await strategies()) {
  describe(`hostile clients against framework apps (${handoff})`, () => {
    for (const framework of APPS) {
      it(`${framework.name}: no input ends the actor, every half-closed connection ends, nothing is left in it`, { timeout: 120_000 }, async (t) => {
        const routes = framework.routes ?? ROUTES;
        await withServer({ app: frameworkApp(framework.file), handoff, workers: 1, keepAlive: 2 }, async ({ server, url, port, logs }) => {
          const crashes: string[] = [];
          server.on('actor-crash', ({ id }, error) => crashes.push(`actor ${id}: ${error?.message}`));
          const next = random(20261205);
          const targets = targetsOf(routes);
          const aimed = corpus.flatMap((raw, i) => aimedAt(raw, targets[i % targets.length]) ?? []);
          const raw = [...corpus, ...aimed, ...Array.from({ length: MUTATIONS }, () => mutate(aimed[Math.floor(next() * aimed.length)], next))];
          const endings: Record<AttackEnding, number> = { response: 0, closed: 0, hung: 0, 'reset by the client': 0 };
          const hung: string[] = [];
          const rawEndings = await inBatches(raw.map((bytes) => () => sendAndHalfClose(port, bytes, next, DEADLINE_MS)));
          rawEndings.forEach((ending, i) => {
            endings[ending]++;
            if (ending === 'hung') hung.push(JSON.stringify(raw[i].toString('latin1').slice(0, 200)));
          });
          const attacks = attacksOn(routes);
          const attackEndings = await inBatches(attacks.map((attack) => () => carryOut(port, attack)));
          attackEndings.forEach((ending, i) => {
            endings[ending]++;
            if (ending === 'hung') hung.push(attacks[i].name);
          });
          t.diagnostic(
            `${raw.length + attacks.length} connections: ${endings.response} answered, ${endings.closed} closed without an answer, ${endings['reset by the client']} reset by the client`,
          );
          assert.deepEqual(hung, [], 'every half-closed connection ends');
          assert.deepEqual(crashes, []);
          assert.ok(endings.response > corpus.length, 'most requests are answered');
          // The first actor serves on, and lets go of every connection and request.
          const stats = await until(async () => {
            const now = await server.stats();
            return now.actors[0]?.connections === 0 && now.actors[0].requestsInFlight === 0 && now;
          }, 'no connection and no request left in the actor').catch(() => server.stats());
          assert.equal(stats.actorsStarted, 1, 'the first actor served throughout');
          assert.deepEqual(stats.actorEndings, { crashed: 0, hung: 0, retired: 0 });
          const [actor] = stats.actors;
          assert.equal(actor.connections, 0, 'no connection left in the actor');
          assert.equal(actor.requestsInFlight, 0, 'no request left in flight');
          const response = await fetch(`${url}${routes.hello}`);
          assert.equal(response.status, 200);
          await response.text();
          assert.doesNotMatch(logs.join(''), /exited unexpectedly|terminated after hanging/);
        });
      });
    }
  });
}
