/**
 * The Prometheus endpoint and readiness (source/lifecycle/prometheus.ts, shared/request-metrics.ts, `ctl status`): an
 * Express app from the CLI past `--max-requests`, so that the totals must carry the responses of ended
 * actors; crashes and hangs counted by cause; `/healthz` and `ctl status` saying 503 / exit 5 while the
 * server stops.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import dgram from 'node:dgram';
import { mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { fixture, runCli, startCli, strategies, withServer } from './helpers/servers.js';
import { until } from './helpers/wait.js';
import { exchange } from './helpers/wire.js';

/** One Prometheus text exposition, as `name{labels}` → value. */
function parseExposition(text: string): Map<string, number> {
  const samples = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    samples.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return samples;
}

async function scrape(metricsUrl: string): Promise<Map<string, number>> {
  const response = await request(`${metricsUrl}/metrics`);
  assert.equal(response.statusCode, 200);
  assert.match(String(response.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parseExposition(await response.body.text());
}

const sample = (samples: Map<string, number>, name: string): number => {
  const value = samples.get(name);
  assert.ok(value !== undefined, `${name} is exported`);
  return value;
};

describe('metrics from the CLI (Express, --max-requests)', () => {
  for (const handoffName of ['relay', 'transfer'] as const) {
    it(`counts every response by status class and duration across recycled actors; /healthz and ctl status say when it is not ready (${handoffName})`, async (t) => {
      if (!(await strategies()).includes(handoffName)) return t.skip('this runtime cannot transfer sockets');
      const pidfile = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-metrics-')), 'server.pid');
      const cli = await startCli([
        '-b',
        '127.0.0.1:0',
        '-w',
        '2',
        '--max-requests',
        '10',
        '--handoff',
        handoffName,
        '--metrics-bind',
        '127.0.0.1:0',
        '--graceful-timeout',
        '10',
        '-p',
        pidfile,
        fixture('frameworks/express.js'),
      ]);
      try {
        const metricsUrl = (await cli.waitFor(/Metrics at: (\S+)\/metrics/))[1];
        const agent = new Agent({ connections: 4 });
        const send = async (route: string) => {
          const response = await request(`${cli.url}${route}`, { dispatcher: agent });
          await response.body.dump();
          return response.statusCode;
        };
        // 40 × 200, 6 × 404, 4 × 500 (a thrown handler), 4 × /slow (400 ms each): past --max-requests 10
        // on both actors, so several actors end and their counts must stay in the totals.
        const statuses = await Promise.all([
          ...Array.from({ length: 40 }, () => send('/hello')),
          ...Array.from({ length: 6 }, () => send('/missing')),
          ...Array.from({ length: 4 }, () => send('/boom')),
          ...Array.from({ length: 4 }, () => send('/slow')),
        ]);
        await agent.close();
        assert.deepEqual(
          [200, 404, 500].map((status) => statuses.filter((s) => s === status).length),
          [44, 6, 4],
        );
        // Recycled actors end once drained: wait until every request is counted and an actor has retired.
        const samples = await until(async () => {
          const now = await scrape(metricsUrl);
          return (now.get('grainbows_actor_ends_total{reason="retired"}') ?? 0) >= 1 && (now.get('grainbows_request_duration_seconds_count') ?? 0) >= 54 && now;
        }, 'an actor retired and all 54 responses counted');
        assert.equal(sample(samples, 'grainbows_requests_total{status_class="2xx"}'), 44);
        assert.equal(sample(samples, 'grainbows_requests_total{status_class="4xx"}'), 6);
        assert.equal(sample(samples, 'grainbows_requests_total{status_class="5xx"}'), 4);
        assert.equal(sample(samples, 'grainbows_requests_total{status_class="aborted"}'), 0);
        assert.equal(sample(samples, 'grainbows_request_duration_seconds_count'), 54);
        assert.equal(sample(samples, 'grainbows_request_duration_seconds_bucket{le="+Inf"}'), 54);
        // The four /slow responses took 400 ms or more: above the 0.25 s bucket, within 10 s.
        assert.ok(sample(samples, 'grainbows_request_duration_seconds_bucket{le="0.25"}') <= 50);
        assert.equal(sample(samples, 'grainbows_request_duration_seconds_bucket{le="10"}'), 54);
        assert.ok(sample(samples, 'grainbows_request_duration_seconds_sum') >= 4 * 0.4);
        assert.ok(sample(samples, 'grainbows_actor_starts_total') >= 3, 'replacements are counted as starts');
        assert.equal(sample(samples, 'grainbows_actor_ends_total{reason="crashed"}'), 0);
        assert.equal(sample(samples, 'grainbows_ready'), 1);
        assert.equal(sample(samples, 'grainbows_actors_desired'), 2);
        // Per-actor series: only live actors, each at most its --max-requests (plus what it served while its replacement booted).
        const perActor = [...samples].filter(([name]) => name.startsWith('grainbows_actor_requests_total{'));
        assert.ok(perActor.length >= 6, 'per-actor series for the live actors');
        assert.ok(samples.has('process_cpu_seconds_total'), "the main thread's process metrics");
        assert.ok(samples.has('nodejs_eventloop_lag_seconds'), "the main thread's event-loop lag");

        const health = await request(`${metricsUrl}/healthz`);
        assert.equal(health.statusCode, 200);
        assert.equal(await health.body.text(), 'ok\n');
        const ready = await runCli(['ctl', '--pid', pidfile, 'status']);
        assert.equal(ready.status, 0, ready.stderr);
        assert.match(ready.stdout, /responses: 54 \(1xx 0, 2xx 44, 3xx 0, 4xx 6, 5xx 4, aborted 0\), mean \d+\.\d ms/);
        assert.match(ready.stdout, /actors: \d+ started, 0 crashed, 0 hung, \d+ retired/);

        // A graceful stop with a slow request in flight: while it drains, the probes say not ready.
        const inFlight = request(`${cli.url}/slow`);
        await until(
          async () => [...(await scrape(metricsUrl))].some(([name, value]) => name.startsWith('grainbows_requests_in_flight{') && value > 0),
          'the slow request in flight',
        );
        cli.child.kill('SIGTERM');
        const notReady = await until(async () => {
          const probe = await request(`${metricsUrl}/healthz`).catch(() => undefined);
          if (!probe) return false;
          const text = await probe.body.text();
          return probe.statusCode === 503 && text;
        }, '/healthz to answer 503 while stopping');
        assert.equal(notReady, 'not ready\n');
        const stopping = await runCli(['ctl', '--pid', pidfile, 'status']);
        assert.ok(stopping.status === 5 || stopping.status === 1, `ctl status while stopping: exit ${stopping.status} (5 not ready, or 1 once gone)`);
        if (stopping.status === 5) assert.match(stopping.stdout, /NOT READY/);
        const answered = await inFlight;
        assert.equal(answered.statusCode, 200);
        assert.equal(await answered.body.text(), 'first\nlast\n');
        assert.equal((await cli.stop()).status, 0);
      } finally {
        await cli.stop('SIGKILL');
      }
    });
  }
});

describe('actor endings in the metrics', () => {
  it("a crash and a hang are counted by cause; the totals keep the dead actors' responses", () =>
    withServer({ app: fixture('crashy.js'), workers: 2, timeout: 1, metricsBind: '127.0.0.1:0' }, async ({ server, port }) => {
      const metricsUrl = server.metricsUrl;
      assert.ok(metricsUrl);
      for (let i = 0; i < 6; i++) await exchange(port, 'GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { responses: 1 });
      await exchange(port, 'GET /crash HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 5000 });
      await until(
        async () => (await server.stats()).actorEndings.crashed === 1 && (await server.stats()).actors.length === 2,
        'the crash counted and replaced',
      );
      await exchange(port, 'GET /hang HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 8000 });
      await until(async () => (await server.stats()).actorEndings.hung === 1, 'the hang counted', 15_000);
      const samples = await scrape(metricsUrl);
      assert.equal(sample(samples, 'grainbows_actor_ends_total{reason="crashed"}'), 1);
      assert.equal(sample(samples, 'grainbows_actor_ends_total{reason="hung"}'), 1);
      assert.equal(sample(samples, 'grainbows_requests_total{status_class="2xx"}'), 6, 'the six answered before the crash and hang are still counted');
    }));
});

const havePromtool = spawnSync('promtool', ['--version']).status === 0;

describe("Prometheus's own lint", () => {
  it(
    'the scrape passes `promtool check metrics`: no gauge is named like a counter',
    { skip: havePromtool || process.env.CI ? false : 'promtool is not installed (apt-get install prometheus)' },
    async () => {
      const cli = await startCli(['-b', '127.0.0.1:0', '--metrics-bind', '127.0.0.1:0', fixture('identify.js')]);
      try {
        const metricsUrl = (await cli.waitFor(/Metrics at: (\S+)\/metrics/))[1];
        await (await fetch(`${cli.url}/`)).text();
        const scrape = await (await fetch(`${metricsUrl}/metrics`)).text();
        const lint = spawnSync('promtool', ['check', 'metrics'], { input: scrape, encoding: 'utf8' });
        assert.equal(lint.status, 0, `${lint.stdout}${lint.stderr}`);
        assert.match(scrape, /^nodejs_active_handles\{type="[^"]+"\} \d+$/m, 'the by-type gauge that replaces the total');
      } finally {
        await cli.stop();
      }
    },
  );
});

describe('--metrics-bind at the CLI', () => {
  it('refuses an address it cannot serve on in one line', async () => {
    const result = await runCli(['--metrics-bind', 'fd://3', fixture('echo.js')]);
    assert.equal(result.status, 2);
    assert.match(result.stderr, /^grainbows: .*--metrics-bind takes HOST:PORT or unix:PATH, not 'fd:\/\/3'\n$/);
  });
});

/** A StatsD collector on a UDP port of 127.0.0.1: `body` gets its port and the lines received so far, kept up to date. */
async function withStatsdCollector(body: (port: number, lines: string[]) => Promise<void>): Promise<void> {
  const collector = dgram.createSocket('udp4');
  const lines: string[] = [];
  collector.on('message', (packet) => lines.push(...packet.toString().split('\n').filter(Boolean)));
  await new Promise<void>((resolve) => collector.bind(0, '127.0.0.1', resolve));
  try {
    await body(collector.address().port, lines);
  } finally {
    collector.close();
  }
}

describe('StatsD (gunicorn names)', () => {
  it('sends gunicorn.requests, gunicorn.request.duration, gunicorn.request.status.<code>, gunicorn.workers and gunicorn.log.<level>, with the prefix', async () => {
    await withStatsdCollector(async (port, lines) => {
      await withServer(
        { app: fixture('frameworks/express.js'), workers: 2, statsdHost: `127.0.0.1:${port}`, statsdPrefix: 'shop.web.' },
        async ({ server, url }) => {
          const statuses = [];
          for (const route of ['/hello', '/hello', '/hello', '/missing', '/boom']) {
            const response = await request(`${url}${route}`);
            await response.body.dump();
            statuses.push(response.statusCode);
          }
          assert.deepEqual(statuses, [200, 200, 200, 404, 500]);
          await until(() => lines.some((line) => line.startsWith('shop.web.gunicorn.workers:')), 'gunicorn.workers');
          assert.equal(server.workers, 2);
        },
      );
      // An actor that dies writes an error line: counted as gunicorn.log.error.
      await withServer(
        { app: fixture('crashy.js'), workers: 1, statsdHost: `127.0.0.1:${port}`, statsdPrefix: 'shop.web' },
        async ({ server, port: appPort }) => {
          await exchange(appPort, 'GET /crash HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 5000 });
          await until(async () => (await server.stats()).actorEndings.crashed === 1, 'the crash');
        },
      );
      // The actors flush at their end; main's gauge was sent at start.
      await until(() => lines.filter((line) => line.startsWith('shop.web.gunicorn.requests:')).length === 5 && lines, 'five gunicorn.requests lines');
      const count = (pattern: RegExp) => lines.filter((line) => pattern.test(line)).length;
      assert.equal(count(/^shop\.web\.gunicorn\.requests:1\|c$/), 5);
      assert.equal(count(/^shop\.web\.gunicorn\.request\.duration:\d+(\.\d+)?\|ms$/), 5);
      assert.equal(count(/^shop\.web\.gunicorn\.request\.status\.200:1\|c$/), 3);
      assert.equal(count(/^shop\.web\.gunicorn\.request\.status\.404:1\|c$/), 1);
      assert.equal(count(/^shop\.web\.gunicorn\.request\.status\.500:1\|c$/), 1);
      assert.ok(count(/^shop\.web\.gunicorn\.workers:2\|g$/) >= 1, `gunicorn.workers in ${JSON.stringify(lines)}`);
      await until(() => count(/^shop\.web\.gunicorn\.log\.error:1\|c$/) >= 1, `gunicorn.log.error in ${JSON.stringify(lines)}`);
    });
  });

  it('the task pool: grainbows.tasks.<outcome> per call, grainbows.tasks.duration, and the threads, running and queued gauges', async () => {
    await withStatsdCollector(async (port, lines) => {
      await withServer(
        { app: fixture('tasks/app.js'), workers: 1, tasks: [`${fixture('tasks/work.js')}:2`], taskTimeout: 1, statsdHost: `127.0.0.1:${port}` },
        async ({ url }) => {
          const call = async (task: string, ...args: unknown[]) =>
            (await (await fetch(new URL(`/call?task=${task}&args=${encodeURIComponent(JSON.stringify(args))}`, url))).json()) as {
              value?: unknown;
              error?: { code?: string };
            };
          assert.deepEqual(await call('fib', 10), { value: 55 });
          assert.deepEqual(await call('fib', 12), { value: 144 });
          assert.equal((await call('fail')).error?.code, 'E_SPEC');
          assert.equal((await call('spin', 5000)).error?.code, 'E_TASK_TIMEOUT');
          await until(() => lines.some((line) => line === 'grainbows.tasks.threads:2|g'), `the threads gauge in ${JSON.stringify(lines)}`);
        },
      );
      const count = (pattern: RegExp) => lines.filter((line) => pattern.test(line)).length;
      await until(() => count(/^grainbows\.tasks\.timed_out:1\|c$/) === 1, `grainbows.tasks.timed_out in ${JSON.stringify(lines)}`);
      assert.equal(count(/^grainbows\.tasks\.completed:1\|c$/), 2);
      assert.equal(count(/^grainbows\.tasks\.failed:1\|c$/), 1);
      assert.equal(count(/^grainbows\.tasks\.duration:\d+(\.\d+)?\|ms$/), 4);
      assert.ok(count(/^grainbows\.tasks\.running:\d+\|g$/) >= 1 && count(/^grainbows\.tasks\.queued:\d+\|g$/) >= 1);
    });
  });
});
