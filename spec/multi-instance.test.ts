/**
 * Past one machine, as docs/operations.md ("Past one machine") sets it up: two grainbows instances
 * (`-w 2 --sticky-sessions`, examples/redis-app.js) with their shared state in a real redis-server, behind a
 * real nginx that keeps each client on one instance (`hash $remote_addr consistent`) over its upstream
 * `keepalive` pool. Clients come from distinct loopback addresses (127.0.0.11, .12, ...), as distinct
 * machines would.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync } from 'node:fs';
import { once } from 'node:events';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { after, before, describe, it } from 'node:test';
import { io as ioClient, type Socket as ClientSocket } from 'socket.io-client';
import { example, startCli, type RunningCli } from './helpers/servers.js';
import { accepting, freePort, nginxSkipReason, startNginx, type RunningNginx } from './helpers/nginx.js';
import { until } from './helpers/wait.js';

const REDIS = '/usr/bin/redis-server';

/** Outside CI a missing redis-server or nginx skips these tests; in CI (CI=true) they fail instead. */
function skipReason(): string | false {
  if (!existsSync(REDIS) && !process.env.CI) return `no redis-server at ${REDIS} (apt-get install redis-server)`;
  return nginxSkipReason();
}

/** docs/operations.md's upstream for two instances, and its `location /`. */
const upstreams = (ports: number[]) => `  upstream app {
    hash $remote_addr consistent;
${ports.map((port) => `    server 127.0.0.1:${port};`).join('\n')}
    keepalive 64;
  }
  map $http_upgrade $connection_upgrade {
    default upgrade;
    ''      '';
  }`;
const LOCATION = `      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Host $host;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $connection_upgrade;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_read_timeout 1h;
      proxy_buffering off;`;

interface Where {
  instance: string;
  actor: number;
}

interface Client {
  socket: ClientSocket;
  transports: string;
  where: Where;
}

function nextEvent<T>(socket: ClientSocket, event: string): Promise<T> {
  return new Promise((resolve) => socket.once(event, (value: T) => resolve(value)));
}

/**
 * A socket.io client from 127.0.0.`host`, through nginx; resolves once the app told it where it landed.
 * It reconnects as socket.io's clients do by default (quickly here), and `where` follows it.
 */
async function connect(url: string, host: number, transports: string[]): Promise<Client> {
  const localAddress = `127.0.0.${host}`;
  const socket = ioClient(url, {
    transports,
    forceNew: true,
    reconnectionDelay: 100,
    reconnectionDelayMax: 500,
    // Polling's requests (engine.io-client's XMLHttpRequest for Node) go through the agent; the WebSocket takes localAddress.
    agent: new http.Agent({ keepAlive: true, localAddress }) as unknown as string,
    localAddress,
  } as Parameters<typeof ioClient>[1]);
  const client: Client = { socket, transports: transports.join('+'), where: await nextEvent<Where>(socket, 'where') };
  socket.on('where', (where: Where) => (client.where = where));
  return client;
}

/** The instance nginx sends 127.0.0.`host` to: GET /where from that address, on a connection of its own. */
function instanceFor(url: string, host: number): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get(`${url}/where`, { localAddress: `127.0.0.${host}`, agent: false }, (response) => {
        let body = '';
        response.on('data', (chunk: Buffer) => (body += chunk));
        response.on('end', () => resolve((JSON.parse(body) as Where).instance));
      })
      .on('error', reject);
  });
}

/**
 * `count` loopback hosts taken from 127.0.0.`first` on, alternately from the addresses nginx's hash sends
 * to each instance: whatever the hash makes of this run's ports, clients given kinds in turn (3 kinds, an
 * odd cycle) have every kind on both instances.
 */
async function hostsAcrossInstances(url: string, count: number, first: number): Promise<number[]> {
  const candidates = Array.from({ length: 100 }, (_, i) => first + i);
  const byInstance = new Map<string, number[]>();
  for (const host of candidates) {
    const instance = await instanceFor(url, host);
    byInstance.set(instance, [...(byInstance.get(instance) ?? []), host]);
  }
  const groups = [...byInstance.values()];
  assert.equal(groups.length, 2, 'nginx sends some of 100 addresses to each instance');
  const hosts: number[] = [];
  for (let i = 0; hosts.length < count; i++) {
    const group = groups[i % 2];
    const host = group[Math.floor(i / 2)];
    assert.ok(host !== undefined, `${count / 2} of 100 addresses for each instance (${groups.map((g) => g.length).join(' and ')})`);
    hosts.push(host);
  }
  return hosts;
}

/** Resolves once every client is connected and was told where it landed, on one of `instances`. */
async function allConnected(clients: Client[], instances: string[]): Promise<void> {
  const astray = () => clients.filter(({ socket, where }) => !socket.connected || !instances.includes(where.instance));
  // Reconnecting after an instance stopped takes each client a few tries through nginx; on a loaded machine, seconds.
  await until(() => astray().length === 0, 'every client connected', 40_000).catch(() => {
    const list = astray().map(
      ({ socket, where, transports }) => `${transports} ${socket.connected ? 'connected' : 'disconnected'} on ${where.instance}/${where.actor}`,
    );
    throw new Error(`${list.length} of ${clients.length} clients not connected to ${instances.join(' or ')}: ${list.join('; ')}`);
  });
}

/** One broadcast: who heard it, and who stayed connected from before it was sent until it was heard or 5 s passed. */
interface Round {
  heard: Client[];
  stayed: Client[];
  speakerStayed: boolean;
}

/** `speaker` says `text` to everyone. */
async function broadcast(speaker: Client, clients: Client[], text: string): Promise<Round> {
  const dropped = new Set<Client>(clients.filter(({ socket }) => !socket.connected));
  const watchers = clients.map((client) => {
    const onDisconnect = () => dropped.add(client);
    client.socket.on('disconnect', onDisconnect);
    return () => client.socket.off('disconnect', onDisconnect);
  });
  const heard = clients.map(
    (client) =>
      new Promise<Client | undefined>((resolve) => {
        const timer = setTimeout(() => resolve(undefined), 5000);
        const listener = (message: { text: string }) => {
          if (message.text !== text) return;
          clearTimeout(timer);
          client.socket.off('said', listener);
          resolve(client);
        };
        client.socket.on('said', listener);
      }),
  );
  speaker.socket.emit('say', text);
  const heardBy = (await Promise.all(heard)).filter((client): client is Client => client !== undefined);
  for (const unwatch of watchers) unwatch();
  return { heard: heardBy, stayed: clients.filter((client) => !dropped.has(client)), speakerStayed: !dropped.has(speaker) };
}

/**
 * Broadcasts `rounds` times from the speakers `speakerAt` picks, while something may be happening to the
 * instances: every client that stayed connected through a round hears it, as long as its speaker stayed
 * connected too (a message sent by a client that is dropped is the client's loss, not the broadcast's).
 */
async function noBroadcastLost(clients: Client[], rounds: number, speakerAt: (round: number) => Client, label: string): Promise<number> {
  let delivered = 0;
  for (let round = 0; round < rounds; round++) {
    const { heard, stayed, speakerStayed } = await broadcast(speakerAt(round), clients, `${label} ${round}`);
    if (!speakerStayed) continue;
    const missed = stayed.filter((client) => !heard.includes(client));
    assert.deepEqual(
      missed.map(({ where, transports }) => `${where.instance}/${where.actor} ${transports}`),
      [],
      `${label}, round ${round}: clients that stayed connected and did not hear it`,
    );
    delivered += heard.length;
  }
  return delivered;
}

/** Once things have settled, one broadcast reaches all `clients` (tried until it does, 20 s at most). */
async function everyoneHears(clients: Client[], label: string): Promise<void> {
  let attempt = 0;
  await until(
    async () => {
      const speaker = clients.find(({ socket }) => socket.connected) ?? clients[0];
      return (await broadcast(speaker, clients, `${label} ${attempt++}`)).heard.length === clients.length;
    },
    `${label}: a broadcast heard by all ${clients.length} clients`,
    20_000,
    200,
  );
}

/** A real redis-server on a free port of 127.0.0.1, its files in `dir`, nothing saved. */
async function startRedis(dir: string): Promise<{ url: string; stop(): Promise<void> }> {
  const port = await freePort();
  const redis: ChildProcess = spawn(REDIS, ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir], {
    stdio: 'ignore',
  });
  await accepting(port);
  return {
    url: `redis://127.0.0.1:${port}`,
    async stop() {
      if (redis.exitCode !== null || redis.signalCode !== null) return;
      redis.kill('SIGTERM');
      await once(redis, 'exit');
    },
  };
}

/** Instances `a` and `b` of examples/redis-app.js, `-w 2` each, on ports of their own. */
function startInstances(args: string[], env: NodeJS.ProcessEnv): Promise<RunningCli[]> {
  return Promise.all(
    ['a', 'b'].map((name) => startCli(['-b', '127.0.0.1:0', '-w', '2', ...args, example('redis-app.js')], { env: { ...env, INSTANCE: name } })),
  );
}

/** nginx in front of `instances`, as docs/operations.md sets it up. */
const nginxFor = (dir: string, instances: RunningCli[]) =>
  startNginx(dir, { upstreams: upstreams(instances.map((cli) => Number(new URL(cli.url).port))), location: LOCATION });

describe('two instances behind nginx, state in Redis', { skip: skipReason() }, () => {
  let redis: Awaited<ReturnType<typeof startRedis>> | undefined;
  let instances: RunningCli[] = [];
  let nginx: RunningNginx;

  before(async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-instances-'));
    redis = await startRedis(dir);
    instances = await startInstances(['--sticky-sessions', '--graceful-timeout', '5'], { REDIS_URL: redis.url });
    nginx = await nginxFor(dir, instances);
  });

  after(async () => {
    await nginx?.stop();
    await Promise.all(instances.map((cli) => cli.stop('SIGTERM')));
    await redis?.stop();
  });

  it('socket.io over polling, websocket and the default transports: every broadcast reaches every client on every actor of both instances, during and after a HUP of one instance and after the other stops', async () => {
    const url = `http://127.0.0.1:${nginx.port}`;
    const kinds = [['polling'], ['websocket'], ['polling', 'websocket']];
    // 24 clients from 24 addresses, 12 of which nginx's hash sends to each instance.
    const hosts = await hostsAcrossInstances(url, 24, 11);
    const clients = await Promise.all(hosts.map((host, i) => connect(url, host, kinds[i % kinds.length])));
    try {
      const placed = new Set(clients.map(({ where }) => `${where.instance}/${where.actor}`));
      assert.equal(new Set(clients.map(({ where }) => where.instance)).size, 2, 'clients on both instances');
      assert.ok(placed.size >= 3, `clients on ${placed.size} actors: ${[...placed].join(', ')}`);
      for (const transports of ['polling', 'websocket', 'polling+websocket'])
        assert.equal(new Set(clients.filter((c) => c.transports === transports).map(({ where }) => where.instance)).size, 2, `${transports} on both instances`);

      // Those that start with polling switch to WebSocket (an upgrade nginx may send on a shared upstream connection).
      const upgrading = clients.filter(({ transports }) => transports === 'polling+websocket');
      await until(() => upgrading.every(({ socket }) => socket.io.engine.transport.name === 'websocket'), 'every polling+websocket client upgraded', 10_000);

      // Rounds of broadcasts, each from a client of another kind and place: all 24 connected, all hear.
      for (let round = 0; round < 6; round++) {
        const { heard } = await broadcast(clients[(round * 5) % clients.length], clients, `round ${round}`);
        assert.equal(heard.length, clients.length, `round ${round}: heard by ${heard.length} of ${clients.length}`);
      }

      // HUP of instance a: its old actors drain while new ones boot, then the graceful timeout (5 s) closes
      // what they still hold, and their clients reconnect. Broadcasts go on throughout.
      const [a, b] = instances;
      process.kill(a.pid, 'SIGHUP');
      const delivered = await noBroadcastLost(clients, 4, (round) => clients[(round * 7) % clients.length], 'during the reload');
      assert.equal(delivered, 4 * clients.length, 'while the old actors drain, every client is still connected and hears everything');
      await a.waitFor(/Reloaded: generation 2 serving/, 20_000);
      await noBroadcastLost(clients, 4, (round) => clients[(round * 5 + 1) % clients.length], 'as the reload ends');
      await allConnected(clients, ['a', 'b']);
      await everyoneHears(clients, 'after the reload');

      // Instance b stops: its clients are dropped and reconnect, nginx sends them to a; the others hear on.
      const leavers = clients.filter(({ where }) => where.instance === 'b');
      const stopping = b.stop('SIGTERM');
      await noBroadcastLost(clients, 4, (round) => clients[(round * 3 + 2) % clients.length], 'while b stops');
      await stopping;
      instances = [a];
      await allConnected(clients, ['a']);
      await everyoneHears(clients, 'after b stopped');
      assert.ok(leavers.length > 0 && leavers.every(({ where }) => where.instance === 'a'), "b's clients are a's now");
    } finally {
      for (const { socket } of clients) socket.disconnect();
    }
  });
});

describe('two instances behind nginx with the Redis Streams adapter', { skip: skipReason() }, () => {
  it('socket.io over polling, websocket and the default transports: every broadcast reaches every client of both instances', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-instances-'));
    const redis = await startRedis(dir);
    const instances: RunningCli[] = [];
    let nginx: RunningNginx | undefined;
    const clients: Client[] = [];
    try {
      instances.push(...(await startInstances(['--sticky-sessions', '--graceful-timeout', '3'], { REDIS_URL: redis.url, SOCKET_IO_ADAPTER: 'streams' })));
      nginx = await nginxFor(dir, instances);
      const url = `http://127.0.0.1:${nginx.port}`;
      const kinds = [['polling'], ['websocket'], ['polling', 'websocket']];
      const hosts = await hostsAcrossInstances(url, 12, 11);
      clients.push(...(await Promise.all(hosts.map((host, i) => connect(url, host, kinds[i % kinds.length])))));
      assert.equal(new Set(clients.map(({ where }) => where.instance)).size, 2, 'clients on both instances');
      for (let round = 0; round < 4; round++) {
        const { heard } = await broadcast(clients[(round * 5) % clients.length], clients, `streams ${round}`);
        assert.equal(heard.length, clients.length, `round ${round}: heard by ${heard.length} of ${clients.length}`);
      }
    } finally {
      for (const { socket } of clients) socket.disconnect();
      await nginx?.stop();
      await Promise.all(instances.map((cli) => cli.stop('SIGTERM')));
      await redis.stop();
    }
  });
});

describe('sessions and rate limits in Redis, across instances and actors', { skip: skipReason() }, () => {
  it('express-session (connect-redis) counts visits 1–5 across both instances and their actors, and rate-limit-redis answers the sixth 429', async () => {
    const redis = await startRedis(mkdtempSync(path.join(os.tmpdir(), 'grainbows-instances-')));
    const instances: RunningCli[] = [];
    try {
      instances.push(...(await startInstances([], { REDIS_URL: redis.url, VISITS_PER_MINUTE: '5' })));
      // One client (one X-Forwarded-For, trusted from loopback) whose requests go round both instances; each
      // request on a new connection, so that each instance spreads them over its actors.
      let cookie = '';
      const served: Array<{ visits: number; where: string }> = [];
      for (let i = 0; i < 5; i++) {
        const response = await fetch(`${instances[i % 2].url}/visits`, {
          headers: { cookie, 'x-forwarded-for': '203.0.113.7', connection: 'close' },
        });
        assert.equal(response.status, 200, `visit ${i + 1}`);
        cookie = response.headers.get('set-cookie')?.split(';')[0] ?? cookie;
        const body = (await response.json()) as { visits: number; instance: string; actor: number };
        served.push({ visits: body.visits, where: `${body.instance}/${body.actor}` });
      }
      assert.deepEqual(
        served.map(({ visits }) => visits),
        [1, 2, 3, 4, 5],
        'one session, counted wherever its requests landed',
      );
      const places = new Set(served.map(({ where }) => where));
      assert.equal(new Set(served.map(({ where }) => where.split('/')[0])).size, 2, 'both instances served it');
      assert.ok(places.size >= 3, `served by ${places.size} actors: ${[...places].join(', ')}`);
      const sixth = await fetch(`${instances[1].url}/visits`, { headers: { cookie, 'x-forwarded-for': '203.0.113.7' } });
      await sixth.text();
      assert.equal(sixth.status, 429, 'the sixth visit in a minute is refused, whichever instance counts it');
      // Another client has its own allowance.
      const other = await fetch(`${instances[0].url}/visits`, { headers: { 'x-forwarded-for': '203.0.113.8' } });
      assert.equal(other.status, 200);
      assert.equal(((await other.json()) as { visits: number }).visits, 1);
    } finally {
      await Promise.all(instances.map((cli) => cli.stop('SIGTERM')));
      await redis.stop();
    }
  });
});
