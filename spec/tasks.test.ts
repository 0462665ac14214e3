/**
 * The task pool (`--tasks`, grainbows/tasks): calls and streams from a real app to real task threads, each
 * way a call can end (a throw, a thread that exits or runs out of memory, --task-timeout, --task-max-queue,
 * a caller that aborts), and the actors untouched by all of it; start-up failures at the CLI; reload under
 * load; graceful stop; hooks; ctl status and metrics.
 */
import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { example, fixture, runCli, startCli, withServer } from './helpers/servers.js';
import type { GrainbowsServer, ServeOptions } from '../source/index.js';
import { startLoad } from './helpers/load.js';
import { until } from './helpers/wait.js';

const WORK = fixture('tasks/work.js');
const APP = fixture('tasks/app.js');

interface Ended {
  value?: unknown;
  error?: { name: string; message: string; code?: string; statusCode?: number };
}

async function callTask(url: string, task: string, ...args: unknown[]): Promise<Ended> {
  const response = await fetch(new URL(`/call?task=${encodeURIComponent(task)}&args=${encodeURIComponent(JSON.stringify(args))}`, url));
  assert.equal(response.status, 200);
  return (await response.json()) as Ended;
}

async function getJson(url: string, route: string): Promise<Ended> {
  return (await (await fetch(new URL(route, url))).json()) as Ended;
}

/**
 * The app with a pool of one worker at nice 7, a 64 MB heap and `--task-timeout 5` (room for a busy machine:
 * a worker near its heap limit can take seconds to run out of memory), and `extra`.
 */
function onePoolWorker(extra: Omit<Partial<ServeOptions>, 'app'>): Partial<ServeOptions> & { app: string } {
  return { app: APP, workers: 1, tasks: [`${WORK}:1`], taskTimeout: 5, taskNice: 7, taskResourceLimits: { maxOldGenerationSizeMb: 64 }, ...extra };
}

/** The actors that crash from now on (none, when the pool isolates its failures). */
function actorCrashes(server: GrainbowsServer): unknown[] {
  const crashes: unknown[] = [];
  server.on('actor-crash', (actor) => crashes.push(actor));
  return crashes;
}

/** A call, a stream, and a task that throws (the caller gets that error, with its name and own properties), as every kind of task worker answers them. */
async function assertCallsAnswered(url: string): Promise<void> {
  assert.deepEqual(await callTask(url, 'fib', 20), { value: 6765 });
  assert.equal(await (await fetch(new URL('/stream?task=count&args=[4]', url))).text(), '1\n2\n3\n4\n');
  assert.deepEqual((await callTask(url, 'fail')).error, { name: 'RangeError', message: 'no such page', code: 'E_SPEC', statusCode: 418 });
}

describe('the task pool, from an app', () => {
  it('runs calls and streams; a throw, an exit, running out of memory, a timeout, a full queue and an abort each end only their call; the actor serves on', async () => {
    await withServer(onePoolWorker({ taskMaxQueue: 1 }), async ({ server, url }) => {
      const crashes = actorCrashes(server);
      const [actorBefore] = (await server.stats()).actors;

      await assertCallsAnswered(url);
      assert.deepEqual(await callTask(url, 'work.js:fib', 10), { value: 55 }, 'module:function');
      assert.deepEqual(await callTask(url, 'work:fib', 10), { value: 55 }, 'the module without its extension');
      assert.equal((await callTask(url, 'nope')).error?.code, 'E_TASK_UNKNOWN');
      assert.equal((await callTask(url, 'elsewhere.js:fib')).error?.code, 'E_TASK_UNKNOWN');

      // A thread that exits, and one that runs out of memory: their calls fail, the thread is replaced.
      const exited = await callTask(url, 'exit', 3);
      assert.equal(exited.error?.code, 'E_TASK_THREAD_EXITED');
      assert.match(exited.error?.message ?? '', /work\.js:exit .*code: 3/);
      assert.deepEqual(await callTask(url, 'fib', 10), { value: 55 }, 'a fresh thread serves the next call');
      const oom = await callTask(url, 'hog');
      assert.equal(oom.error?.code, 'E_TASK_THREAD_EXITED');
      assert.match(oom.error?.message ?? '', /memory/i);
      assert.deepEqual(await callTask(url, 'fib', 10), { value: 55 });

      // --task-timeout 5: a call that computes for 20 s ends at about 5 s.
      const startedAt = Date.now();
      const late = await callTask(url, 'spin', 20_000);
      const tookMs = Date.now() - startedAt;
      assert.equal(late.error?.code, 'E_TASK_TIMEOUT');
      assert.ok(tookMs >= 4900 && tookMs < 10_000, `timed out after ${tookMs} ms`);
      assert.deepEqual(await callTask(url, 'fib', 10), { value: 55 });

      // An abort while the call runs ends its thread (a synchronous function cannot be interrupted otherwise).
      const aborted = await getJson(url, '/abort-run?after=200&ms=5000');
      assert.equal(aborted.error?.name, 'TimeoutError');

      // --task-max-queue 1 with 1 thread: of 4 calls at once, 1 runs, 1 waits, 2 are refused at once.
      assert.deepEqual((await getJson(url, '/burst?n=4&ms=300')).value, ['ok', 'ok', 'E_TASK_QUEUE_FULL', 'E_TASK_QUEUE_FULL']);

      // The actor answers other requests while its call computes on a task thread.
      const busy = callTask(url, 'spin', 1500);
      await until(async () => (await server.stats()).tasks[0].running === 1, 'the call to be running');
      const lightStarted = Date.now();
      assert.equal(await (await fetch(new URL('/light', url))).text(), 'light');
      const lightMs = Date.now() - lightStarted;
      assert.ok(lightMs < 500, `a light request took ${lightMs} ms while a task computed`);
      assert.equal(typeof (await busy).value, 'number');

      // The task threads run at the lower priority asked for (Linux applies it per thread).
      if (process.platform === 'linux') assert.deepEqual(await callTask(url, 'niceness'), { value: 7 });

      const stats = await server.stats();
      assert.equal(crashes.length, 0, 'no actor crashed');
      assert.equal(stats.actorsStarted, 1, 'the one actor served it all');
      assert.equal(stats.actors[0].actorId, actorBefore.actorId);
      const [tasks] = stats.tasks;
      assert.equal(tasks.module, 'work.js');
      assert.equal(tasks.threads, 1);
      assert.equal(tasks.threadExited, 2);
      assert.equal(tasks.timedOut, 1);
      assert.equal(tasks.cancelled, 1);
      assert.equal(tasks.refused, 2);
      assert.equal(tasks.failed, 1, 'the throw (names that resolve to nothing are refused in the actor, before the pool)');
      assert.equal(tasks.threadsStarted, 5, 'the first thread and four replacements (exit, memory, timeout, abort)');
      assert.ok(tasks.completed >= 10);
    });
  });

  it('streams with backpressure: a reader that stops pauses the generator; a client that leaves ends it (its finally runs)', async () => {
    await withServer({ app: APP, workers: 1, tasks: [`${WORK}:1`] }, async ({ url }) => {
      const slow = (await getJson(url, '/slow-reader?ms=600')).value as { first: number; whilePaused: number };
      assert.equal(slow.first, 1);
      assert.ok(slow.whilePaused <= 20, `the generator ran ${slow.whilePaused} values ahead of a reader that took 1`);
      assert.ok(slow.whilePaused >= 2, 'it did run ahead a little');
      // Leaving the loop early (values.return()) ran the generator's finally.
      assert.deepEqual(await callTask(url, 'closedEarly'), { value: 1 });

      // A client that reads a few lines of an endless stream and leaves: the app's signal ends the generator.
      const { port } = new URL(url);
      const socket = net.connect(Number(port), '127.0.0.1');
      socket.write('GET /stream?task=ticks&args=[10] HTTP/1.1\r\nHost: x\r\n\r\n');
      let seen = '';
      await new Promise<void>((resolve) =>
        socket.on('data', (chunk) => {
          seen += chunk;
          if (/\r\n5\r\n/.test(seen) || seen.split('\n').length > 12) resolve();
        }),
      );
      socket.destroy();
      await until(async () => (await callTask(url, 'closedEarly')).value === 2, 'the generator to end when its client left');
    });
  });

  it('moves ArrayBuffers both ways instead of copying: the caller’s is detached, the result arrives whole', async () => {
    await withServer({ app: APP, workers: 1, tasks: [`${WORK}:1`] }, async ({ url }) => {
      const moved = (await getJson(url, `/transfer?n=${1 << 20}`)).value;
      assert.deepEqual(moved, { summed: { total: 1 << 20, length: 1 << 20 }, detachedHere: true, back: { type: 'Uint8Array', length: 1 << 20, first: 7 } });
    });
  });
});

describe('--task-isolation process', () => {
  it('runs calls and streams in child processes; a native crash, an exit, running out of memory, a timeout and an abort each end only their process and call', async () => {
    await withServer(onePoolWorker({ taskIsolation: 'process' }), async ({ server, url }) => {
      const crashes = actorCrashes(server);
      const taskPid = (await callTask(url, 'pid')).value;
      assert.equal(typeof taskPid, 'number');
      assert.notEqual(taskPid, process.pid, 'the call ran in another process');
      await assertCallsAnswered(url);
      const transferred = (await getJson(url, '/transfer?n=65536')).value as {
        summed: { total: number; length: number };
        back: { length: number; first: number };
      };
      assert.deepEqual(transferred.summed, { total: 65536, length: 65536 });
      assert.deepEqual([transferred.back.length, transferred.back.first], [65536, 7]);
      if (process.platform === 'linux') assert.deepEqual(await callTask(url, 'niceness'), { value: 7 });

      // A segfault: in a thread it would end the server; here it ends one process, and the call says so.
      assert.equal((await callTask(url, 'crash')).error?.code, 'E_TASK_THREAD_EXITED');
      assert.equal(await (await fetch(new URL('/light', url))).text(), 'light', 'the actor serves on');
      const replacement = (await callTask(url, 'pid')).value;
      assert.notEqual(replacement, taskPid, 'a new process took its place');
      assert.equal((await callTask(url, 'exit', 3)).error?.code, 'E_TASK_THREAD_EXITED');
      assert.equal((await callTask(url, 'hog')).error?.code, 'E_TASK_THREAD_EXITED');
      assert.equal((await callTask(url, 'spin', 10000)).error?.code, 'E_TASK_TIMEOUT');
      // Once the replacement serves (this call waits for it), an abort ends the call while it runs, and its process.
      assert.deepEqual(await callTask(url, 'fib', 10), { value: 55 });
      assert.equal((await getJson(url, '/abort-run?after=200&ms=5000')).error?.name, 'TimeoutError');
      assert.deepEqual(await callTask(url, 'fib', 10), { value: 55 });

      const [pool] = (await server.stats()).tasks;
      assert.equal(pool.threadsStarted, 6, 'the first process and five replacements');
      assert.deepEqual([pool.threadExited, pool.timedOut, pool.cancelled, pool.failed], [3, 1, 1, 1]);
      assert.equal(pool.threads, 1);
      assert.deepEqual(crashes, [], 'no actor ended');
    });
  });
});

describe('the task pool, at the command line', () => {
  it('runs the README snippet (examples/tasks) as written; ctl status shows the pool', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-tasks-'));
    const pidfile = path.join(dir, 'pid');
    const cli = await startCli([
      '-b',
      '127.0.0.1:0',
      '-w',
      '2',
      '--tasks',
      example('tasks/tasks.js'),
      '--task-threads',
      '2',
      '--pid',
      pidfile,
      example('tasks/app.js'),
    ]);
    try {
      assert.equal(await (await fetch(new URL('/fib', cli.url))).text(), '832040');
      assert.equal(await (await fetch(new URL('/count', cli.url))).text(), '1\n2\n3\n4\n5\n');
      assert.equal(await (await fetch(cli.url)).text(), 'hello');
      await until(() => existsSync(pidfile), 'the pidfile');
      const status = await runCli(['ctl', 'status', '--pid', pidfile]);
      assert.equal(status.status, 0, status.stderr);
      assert.match(status.stdout, /tasks tasks\.js: 2 threads, 0 running, 0 queued; 2 completed, 0 failed/);
    } finally {
      await cli.stop();
    }
  });

  it('refuses to start, with one line and status 4, when a task module is missing, throws or does not parse', async () => {
    const cases: Array<[string, RegExp]> = [
      ['no/such/tasks.js', /^grainbows: task module not found: no\/such\/tasks\.js \(looked at .*\)$/],
      [fixture('throws-at-load.js'), /^grainbows: failed to load task module .*throws-at-load\.js: Error: the database is not there$/],
      [
        fixture('syntax-error.js'),
        /^grainbows: failed to load task module .*syntax-error\.js \(.*syntax-error\.js:2\): SyntaxError: missing \) after argument list$/,
      ],
      [fixture('not-an-app.js'), /^grainbows: task module .*not-an-app\.js exports no functions$/],
    ];
    for (const [module, expected] of cases) {
      const result = await runCli(['-b', '127.0.0.1:0', '--tasks', module, APP]);
      assert.equal(result.status, 4, `${module}: ${result.stderr}`);
      const errorLines = result.stderr.split('\n').filter((line) => line.startsWith('grainbows:'));
      assert.equal(errorLines.length, 1, result.stderr);
      assert.match(errorLines[0], expected);
      assert.doesNotMatch(result.stderr, /Listening at|Booted actor/, 'no actor boots and nothing listens');
    }
    const usage = await runCli(['-b', '127.0.0.1:0', '--tasks', `${WORK}:0`, APP]);
    assert.equal(usage.status, 2);
    assert.match(usage.stderr, /a task module needs at least 1 thread/);
  });

  for (const isolation of ['thread', 'process'])
    it(`HUP re-imports the task modules under load with 0 failed calls; a call running then finishes; stop lets one finish; hooks run in each ${isolation}`, async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-tasks-'));
      const module = path.join(dir, 'work.js');
      // The copy needs no grainbows import: versions come from version.txt beside it, read at import.
      writeFileSync(module, readFileSync(WORK, 'utf8').replace(/^import \{ transfer \} from 'grainbows\/tasks';$/m, 'const transfer = (value) => value;'));
      writeFileSync(path.join(dir, 'version.txt'), 'one');
      const hookLog = path.join(dir, 'hooks.log');
      const config = path.join(dir, 'grainbows.config.js');
      copyFileSync(fixture('tasks/hooks.config.js'), config);
      const cli = await startCli(
        ['-c', config, '-b', '127.0.0.1:0', '-w', '2', '--tasks', `${module}:2`, '--task-isolation', isolation, '--metrics-bind', '127.0.0.1:0', APP],
        {
          env: { TASK_HOOK_LOG: hookLog },
        },
      );
      try {
        const metricsUrl = (await cli.waitFor(/Metrics at: (\S+)\/metrics/))[1];
        const hookLines = (prefix: string) =>
          readFileSync(hookLog, 'utf8')
            .split('\n')
            .filter((line) => line.startsWith(prefix));
        await until(() => hookLines('init work.js').length === 2, 'both threads to run taskThreadInit');
        const load = startLoad(cli.url, { concurrency: 8, path: '/call?task=version&args=[]' });
        await load.reach(300);
        const running = callTask(cli.url, 'sleep', 1500);
        const oldThreads = hookLines('init').map((line) => Number(line.split(' ')[2]));
        await until(
          async () => /^grainbows_task_calls_running\{module="work\.js"\} [1-9]/m.test(await (await fetch(`${metricsUrl}/metrics`)).text()),
          'a call running',
        );
        writeFileSync(path.join(dir, 'version.txt'), 'two');
        process.kill(cli.pid, 'SIGHUP');
        await until(async () => (await callTask(cli.url, 'version')).value === 'two', 'the reloaded module to answer');
        await load.reach(load.count + 300);
        const result = await load.stop();
        assert.equal(result.failed, 0, result.failures.join('\n'));
        for (const [body] of result.bodies) assert.match(body, /^\{"value":"(one|two)"\}$/, 'every call answered by a task');
        assert.ok(oldThreads.includes((await running).value as number), 'the call running during the reload finished on its old thread');
        await until(() => hookLines('exit work.js').length === 2, 'the old threads to run taskThreadExit');

        const metrics = await (await fetch(`${metricsUrl}/metrics`)).text();
        assert.match(metrics, /^grainbows_task_threads\{module="work\.js"\} 2$/m);
        const completed = Number(/^grainbows_task_calls_total\{module="work\.js",outcome="completed"\} (\d+)$/m.exec(metrics)?.[1]);
        assert.ok(completed >= 600, `completed calls: ${completed}`);
        assert.match(metrics, /^grainbows_task_thread_starts_total\{module="work\.js"\} 4$/m);

        // A graceful stop lets a running call finish.
        const last = callTask(cli.url, 'sleep', 800);
        await until(
          async () => /^grainbows_task_calls_running\{module="work\.js"\} 1$/m.test(await (await fetch(`${metricsUrl}/metrics`)).text()),
          'the call to be running',
        );
        const stopped = cli.stop();
        assert.equal(typeof (await last).value, 'number');
        assert.equal((await stopped).status, 0);
        const lines = readFileSync(hookLog, 'utf8').trim().split('\n');
        assert.equal(lines.filter((line) => line.startsWith('init')).length, 4);
        assert.equal(lines.filter((line) => line.startsWith('exit')).length, 4, lines.join('\n'));
      } finally {
        await cli.stop();
      }
    });
});

describe('real frameworks calling the pool, at volume', () => {
  // Each app past its actors' --worker-connections (6) and --max-requests (40, so that actors are recycled
  // while their requests wait on task calls), with more calls at once than the pool has threads.
  const CLIENTS = 24;
  const PER_CLIENT = 12;
  const fibOf = (n: number): number => (n < 2 ? n : fibOf(n - 1) + fibOf(n - 2));
  for (const framework of ['express', 'fastify', 'koa']) {
    it(`${framework}: ${CLIENTS * PER_CLIENT} requests, a third CPU calls and a third streams, every answer exact, every call counted`, async () => {
      await withServer(
        { app: fixture(`tasks/${framework}.js`), workers: 2, workerConnections: 6, maxRequests: 40, tasks: [`${WORK}:2`] },
        async ({ server, url }) => {
          const agent = new Agent({ connections: CLIENTS });
          const wrong: string[] = [];
          let calls = 0;
          const client = async (index: number) => {
            for (let i = 0; i < PER_CLIENT; i++) {
              const n = 12 + ((index + i) % 10);
              const [route, expected] = [
                ['/hello', `hello from ${framework}`],
                [`/fib/${n}`, String(fibOf(n))],
                [`/count/${n}`, Array.from({ length: n }, (_, k) => `${k + 1}\n`).join('')],
              ][(index + i) % 3];
              if (route !== '/hello') calls++;
              const response = await request(new URL(route, url), { dispatcher: agent });
              const body = await response.body.text();
              if (response.statusCode !== 200 || body !== expected) wrong.push(`${route}: ${response.statusCode} ${body.slice(0, 60)}`);
            }
          };
          await Promise.all(Array.from({ length: CLIENTS }, (_, index) => client(index)));
          await agent.close();
          assert.deepEqual(wrong.slice(0, 5), []);
          const stats = await server.stats();
          const [pool] = stats.tasks;
          assert.equal(pool.completed, calls, 'each call counted once, as completed');
          assert.deepEqual([pool.failed, pool.timedOut, pool.refused, pool.threadExited, pool.running, pool.queued], [0, 0, 0, 0, 0, 0]);
          assert.equal(pool.threadsStarted, 2, 'no task thread replaced');
          // Both first actors passed 40 requests: each was recycled (it serves on until its replacement has
          // booted, then drains; an ending is counted once the actor is gone).
          await until(async () => (await server.stats()).actorEndings.retired >= 2, 'both first actors recycled by --max-requests');
          assert.equal((await server.stats()).actorEndings.crashed, 0);
        },
      );
    });
  }

  it('--task-max-queue: calls past it are refused at once, and each framework maps E_TASK_QUEUE_FULL to 503', async () => {
    for (const framework of ['express', 'fastify', 'koa']) {
      await withServer({ app: fixture(`tasks/${framework}.js`), workers: 1, tasks: [`${WORK}:1`], taskMaxQueue: 2 }, async ({ server, url }) => {
        const answers = await Promise.all(
          Array.from({ length: 10 }, async () => {
            const response = await fetch(new URL('/fib/30', url));
            return `${response.status} ${await response.text()}`;
          }),
        );
        const busy = answers.filter((answer) => answer === '503 busy').length;
        const done = answers.filter((answer) => answer === '200 832040').length;
        assert.equal(busy + done, 10, answers.join(', '));
        assert.ok(busy >= 1 && done >= 3, `${framework}: ${done} answered, ${busy} refused`);
        const [pool] = (await server.stats()).tasks;
        assert.deepEqual([pool.refused, pool.completed], [busy, done]);
      });
    }
  });
});
