/**
 * Binary upgrade: USR2 (POSIX) or `grainbows ctl upgrade` (everywhere) starts a new process on the same
 * listening sockets; once it serves, the old one drains and exits. Under continuous load nothing fails.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { describe, it } from 'node:test';
import { until } from './helpers/wait.js';
import { runCli, startCli, type RunningCli, versionedApp } from './helpers/servers.js';
import { startLoad } from './helpers/load.js';
import { AS_ROOT_FOR_NOBODY, isAlive } from './helpers/probes.js';

/** Processes start and stop slowly here: wait up to 15,000 ms. */
const slowly = <T>(probe: Parameters<typeof until<T>>[0], what: string) => until<T>(probe, what, 15_000, 25);

const pidIn = (file: string): number | undefined => (existsSync(file) ? Number(readFileSync(file, 'utf8').trim()) || undefined : undefined);
/** The old process's exit: its status once the new one has taken over. */
const exitOf = (cli: RunningCli): Promise<number | null> =>
  cli.child.exitCode !== null ? Promise.resolve(cli.child.exitCode) : new Promise((resolve) => cli.child.once('exit', (status) => resolve(status)));

/** GET / over the unix socket at `socketPath`, on a connection of its own: the body. */
function getOverUnix(socketPath: string): Promise<string> {
  return new Promise((resolve, reject) => {
    http
      .get({ socketPath, path: '/', headers: { connection: 'close' } }, (res) => {
        let body = '';
        res.on('data', (chunk) => (body += chunk));
        res.on('end', () => resolve(body));
      })
      .on('error', reject);
  });
}

/** Stops the process named by the pidfile (the successor, which is not our child) and waits for it. */
async function stopByPidfile(pidfile: string): Promise<void> {
  for (const file of [pidfile, `${pidfile}.2`, `${pidfile}.oldbin`]) {
    const pid = pidIn(file);
    if (!pid || !isAlive(pid)) continue;
    process.kill(pid, 'SIGTERM');
    await slowly(() => !isAlive(pid), `process ${pid} to stop`);
  }
}

describe('binary upgrade', { skip: process.platform === 'win32' ? 'USR2 is POSIX; the ctl path is tested on Windows under wine' : false }, () => {
  it('USR2 under load: 10,000 requests across it, 0 failed, the new code answers after, pidfile dance as gunicorn', async () => {
    const { app, dir, setVersion } = versionedApp('v1');
    const pidfile = path.join(dir, 'server.pid');
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '2', '-p', pidfile, '--graceful-timeout', '10', app]);
    try {
      const oldPid = await slowly(() => pidIn(pidfile), 'the pidfile');
      assert.equal(oldPid, cli.pid);
      const load = startLoad(cli.url, { concurrency: 16 });
      await load.reach(4000);
      setVersion('v2');
      const exited = exitOf(cli);
      cli.child.kill('SIGUSR2');
      // During the swap: the old pidfile is PIDFILE.oldbin, the new process writes PIDFILE.2.
      const newPid = await slowly(() => pidIn(`${pidfile}.2`), 'PIDFILE.2');
      assert.notEqual(newPid, oldPid);
      assert.equal(pidIn(`${pidfile}.oldbin`) ?? oldPid, oldPid);
      assert.equal(await exited, 0, 'the old process drains and exits 0');
      await slowly(() => pidIn(pidfile) === newPid, 'PIDFILE to name the new process');
      assert.ok(!existsSync(`${pidfile}.2`) && !existsSync(`${pidfile}.oldbin`));
      await load.reach(Math.max(load.count + 3000, 10_000));
      const result = await load.stop();
      assert.equal(result.failed, 0, result.failures.join('\n'));
      assert.ok(result.ok >= 10_000, `${result.ok} requests`);
      assert.deepEqual(new Set(result.lastBodies), new Set(['v2']), 'after the upgrade only the new process answers');
      assert.match(cli.output(), new RegExp(`Upgrade complete: process ${oldPid} has exited; this process \\(${newPid}\\) is the server now`));
    } finally {
      await stopByPidfile(pidfile);
      await cli.stop('SIGKILL');
    }
  });

  it(
    '-u nobody: USR2 keeps a unix socket path the old process bound as root (given to nobody at bind), and both stop cleanly',
    AS_ROOT_FOR_NOBODY,
    async () => {
      const { app, dir, setVersion } = versionedApp('v1');
      chmodSync(dir, 0o777); // nobody writes the new process's pidfile here
      const pidfile = path.join(dir, 'server.pid');
      const socketPath = path.join(dir, 'app.sock');
      // umask 022: the socket is not writable by others, so only owning it lets nobody link it.
      const cli = await startCli(['-b', `unix:${socketPath}`, '-u', 'nobody', '-g', 'nogroup', '-m', '022', '-p', pidfile, app]);
      const overUnix = () => getOverUnix(socketPath);
      try {
        assert.equal(await overUnix(), 'v1');
        assert.notEqual(statSync(socketPath).uid, 0, 'the socket belongs to the user the server runs as');
        setVersion('v2');
        const exited = exitOf(cli);
        cli.child.kill('SIGUSR2');
        assert.equal(await exited, 0, cli.output());
        assert.doesNotMatch(cli.output(), /cannot keep|stop failed|Unhandled/);
        assert.ok(existsSync(socketPath), 'the unix socket path survives the old process');
        assert.equal(await overUnix(), 'v2');
      } finally {
        await stopByPidfile(pidfile);
        await cli.stop('SIGKILL');
      }
    },
  );

  it('ctl upgrade keeps a unix socket path serving; a new process that fails leaves the old one serving', async () => {
    const { app, dir } = versionedApp('v1');
    const pidfile = path.join(dir, 'server.pid');
    const socketPath = path.join(dir, 'app.sock');
    const cli = await startCli(['-b', `unix:${socketPath}`, '-b', '127.0.0.1:0', '-p', pidfile, app]);
    const ctl = (...args: string[]) => runCli(['ctl', '--pid', pidfile, ...args], { timeoutMs: 60_000 });
    const overUnix = () => getOverUnix(socketPath);
    try {
      const oldPid = await slowly(() => pidIn(pidfile), 'the pidfile');
      // The app no longer loads: the upgrade fails and the old process serves on, pidfile untouched.
      rmSync(path.join(dir, 'version.txt'));
      const failed = await ctl('upgrade');
      assert.equal(failed.status, 1);
      assert.match(failed.stderr, /^grainbows ctl: the new process did not start, this one keeps serving: process \d+ (failed to start|exited)/);
      assert.equal(pidIn(pidfile), oldPid);
      assert.ok(isAlive(oldPid));
      writeFileSync(path.join(dir, 'version.txt'), 'v3');
      assert.equal(await overUnix(), 'v1', 'still the old process');
      const exited = exitOf(cli);
      const upgraded = await ctl('upgrade');
      assert.equal(upgraded.status, 0, upgraded.stderr);
      assert.equal(await exited, 0);
      assert.ok(existsSync(socketPath), 'the unix socket path survives the old process');
      assert.equal(await overUnix(), 'v3');
      const tcpUrl = /Listening at: (http:\S+)/.exec(cli.output())![1];
      assert.equal(await (await fetch(tcpUrl, { headers: { connection: 'close' } })).text(), 'v3');
      // The new process renames PIDFILE.2 to PIDFILE within 250 ms of the old one's exit; ctl reads PIDFILE.
      const newPid = await slowly(() => {
        const pid = pidIn(pidfile);
        return pid !== undefined && pid !== oldPid && pid;
      }, 'the pidfile to name the new process');
      const status = await ctl('--json', 'status');
      assert.equal((JSON.parse(status.stdout) as { result: { pid: number } }).result.pid, newPid);
    } finally {
      await stopByPidfile(pidfile);
      await cli.stop('SIGKILL');
    }
  });
});
