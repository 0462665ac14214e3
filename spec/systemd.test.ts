/**
 * systemd's protocols (source/lifecycle/systemd.ts) against systemd's own tool and socket format: socket activation
 * through `systemd-socket-activate`, which binds and starts grainbows on the first connection as systemd
 * does, and readiness through a notify socket read by spec/fixtures/notify-listener.py (Node cannot receive
 * a unix datagram).
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { Agent, request } from 'undici';
import { CLI, fixture, ROOT, startCli } from './helpers/servers.js';
import { until } from './helpers/wait.js';
import { activatedDescriptors, forgetActivation } from '../source/lifecycle/systemd.js';

const ACTIVATE = '/usr/bin/systemd-socket-activate';
const skip =
  process.platform !== 'linux'
    ? 'systemd is Linux only'
    : !existsSync(ACTIVATE)
      ? 'needs systemd-socket-activate (Debian package systemd)'
      : !existsSync('/usr/bin/python3')
        ? 'needs python3 for the notify socket'
        : false;

/** Processes start and stop slowly on a busy machine. */
const slowly = <T>(probe: Parameters<typeof until<T>>[0], what: string) => until<T>(probe, what, 15_000);

interface NotifySocket {
  /** What to put in NOTIFY_SOCKET. */
  address: string;
  /** Every datagram received so far, in order. */
  messages: string[];
  /** Resolves with the first message from index `from` on that matches. */
  next(pattern: RegExp, from?: number): Promise<{ message: string; index: number }>;
  close(): void;
}

/** A notify socket at `address` (a path, or @name). */
async function listenForNotifications(address: string): Promise<NotifySocket> {
  const listener = spawn('python3', [fixture('notify-listener.py'), address], { stdio: ['ignore', 'pipe', 'inherit'] });
  const messages: string[] = [];
  let bound = false;
  let pending = '';
  listener.stdout.setEncoding('utf8').on('data', (chunk: string) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop() ?? '';
    for (const line of lines) {
      if (line === 'bound') bound = true;
      else if (line) messages.push(JSON.parse(line) as string);
    }
  });
  await until(() => bound, `the notify socket ${address}`);
  return {
    address,
    messages,
    next: (pattern, from = 0) =>
      slowly(
        () => {
          const index = messages.findIndex((message, at) => at >= from && pattern.test(message));
          return index >= 0 && { message: messages[index], index };
        },
        `a notification matching ${pattern} (got ${JSON.stringify(messages)})`,
      ),
    close: () => listener.kill(),
  };
}

/** A TCP port nobody listens on now. */
async function freePort(): Promise<number> {
  const server = net.createServer().listen(0, '127.0.0.1');
  await new Promise((resolve) => server.once('listening', resolve));
  const { port } = server.address() as net.AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

function exitOf(child: ChildProcess): Promise<number | null> {
  return child.exitCode !== null ? Promise.resolve(child.exitCode) : new Promise((resolve) => child.once('exit', (status) => resolve(status)));
}

describe('systemd', { skip }, () => {
  const running: ChildProcess[] = [];
  after(() => {
    for (const child of running) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });

  it('socket activation: the TCP and unix sockets systemd passed are served instead of -b, and READY=1, RELOADING=1, STOPPING=1 are told', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-systemd-'));
    const notify = await listenForNotifications(path.join(dir, 'notify.sock'));
    try {
      const port = await freePort();
      const unixPath = path.join(dir, 'activated.sock');
      const notUsed = path.join(dir, 'not-used.sock');
      // systemd-socket-activate binds both, then starts grainbows on the first connection with LISTEN_FDS=2.
      const activate = spawn(
        ACTIVATE,
        [
          '-l',
          `127.0.0.1:${port}`,
          '-l',
          unixPath,
          '-E',
          `NOTIFY_SOCKET=${notify.address}`,
          process.execPath,
          CLI,
          '-w',
          '1',
          '-b',
          `unix:${notUsed}`,
          fixture('echo.js'),
        ],
        { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] },
      );
      running.push(activate);
      let output = '';
      activate.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      activate.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
      await slowly(() => existsSync(unixPath), 'systemd-socket-activate to listen');
      await slowly(() => /Listening on 127\.0\.0\.1/.test(output), 'the TCP socket');

      // This connection reaches the socket before grainbows runs: it is the one that starts it.
      const first = await request(`http://127.0.0.1:${port}/before-start`, { headersTimeout: 20_000 });
      assert.equal(first.statusCode, 200);
      assert.equal(((await first.body.json()) as { url: string }).url, '/before-start');
      const overUnix = await request('http://localhost/over-unix', { dispatcher: new Agent({ connect: { socketPath: unixPath } }) });
      assert.equal(overUnix.statusCode, 200);
      assert.equal(((await overUnix.body.json()) as { url: string }).url, '/over-unix');
      assert.ok(!existsSync(notUsed), 'the -b bind is not used when systemd passes sockets');
      assert.match(output, /Socket activation: listening on the 2 sockets systemd passed \(fd:\/\/3, fd:\/\/4\)/);

      // Each listener is named by its address, the unix one by its path, not by its descriptor.
      assert.match(output, new RegExp(`Listening at: http://127\\.0\\.0\\.1:${port} \\(`));
      assert.ok(output.includes(`Listening at: unix:${unixPath} (`), output);
      const servingPid = Number(/Listening at: \S+ \((\d+)\)/.exec(output)?.[1]);
      const ready = await notify.next(/^READY=1$/m);
      assert.match(ready.message, new RegExp(`^MAINPID=${servingPid}$`, 'm'), 'READY=1 names the serving process');

      // systemd's ExecReload sends HUP to the process it started (on Node 20, the launcher: it passes it on).
      activate.kill('SIGHUP');
      const reloading = await notify.next(/^RELOADING=1$/m, ready.index + 1);
      assert.match(reloading.message, /^MONOTONIC_USEC=\d+$/m);
      await notify.next(/^READY=1$/m, reloading.index + 1);
      const afterReload = await request(`http://127.0.0.1:${port}/after-reload`);
      assert.equal(afterReload.statusCode, 200);
      await afterReload.body.dump();

      activate.kill('SIGTERM');
      await notify.next(/^STOPPING=1$/m);
      assert.equal(await exitOf(activate), 0);
    } finally {
      notify.close();
    }
  });

  it('a binary upgrade moves MAINPID to the new process, and the old one does not say STOPPING=1 (abstract notify socket)', async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-systemd-'));
    const notify = await listenForNotifications(`@grainbows-test-${randomBytes(6).toString('hex')}`);
    try {
      const cli = await startCli(['-b', '127.0.0.1:0', '-w', '1', '-p', path.join(dir, 'server.pid'), fixture('echo.js')], {
        env: { NOTIFY_SOCKET: notify.address },
      });
      running.push(cli.child);
      const first = await notify.next(/^READY=1$/m);
      assert.match(first.message, new RegExp(`^MAINPID=${cli.pid}$`, 'm'));
      const exited = exitOf(cli.child);
      cli.child.kill('SIGUSR2');
      const successor = Number((await cli.waitFor(/Upgrade: started process (\d+)/, 15_000))[1]);
      const handedOver = await notify.next(/^READY=1$/m, first.index + 1);
      assert.match(handedOver.message, new RegExp(`^MAINPID=${successor}$`, 'm'), 'the successor names itself the main process');
      assert.equal(await exited, 0, 'the old process drains and exits');
      assert.ok(!notify.messages.some((message) => /^STOPPING=1$/m.test(message)), 'handing over is not stopping');
      const answer = await request(cli.url);
      assert.equal(answer.statusCode, 200, 'the successor serves');
      await answer.body.dump();
      process.kill(successor, 'SIGTERM');
      await notify.next(/^STOPPING=1$/m);
      await slowly(() => {
        try {
          process.kill(successor, 0);
          return false;
        } catch {
          return true;
        }
      }, `process ${successor} to stop`);
    } finally {
      notify.close();
    }
  });
});

describe('LISTEN_FDS and LISTEN_PID', () => {
  it('are the descriptors from 3 on, only for the pid they name', () => {
    assert.deepEqual(activatedDescriptors({ LISTEN_FDS: '2', LISTEN_PID: '40' }, [40]), [3, 4]);
    assert.deepEqual(activatedDescriptors({ LISTEN_FDS: '1', LISTEN_PID: '40' }, [41, 40]), [3], "a launcher's child accepts its launcher's");
    assert.deepEqual(activatedDescriptors({ LISTEN_FDS: '2', LISTEN_PID: '40' }, [41]), [], 'meant for another process');
    assert.deepEqual(activatedDescriptors({ LISTEN_PID: '40' }, [40]), []);
    for (const count of ['0', '-1', '1.5', 'two', '']) assert.deepEqual(activatedDescriptors({ LISTEN_FDS: count, LISTEN_PID: '40' }, [40]), [], count);
  });

  it('are removed once taken, so that a process started later does not claim them', () => {
    const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '40', LISTEN_FDNAMES: 'web', NOTIFY_SOCKET: '/run/notify' };
    forgetActivation(env);
    assert.deepEqual(env, { NOTIFY_SOCKET: '/run/notify' });
  });
});
