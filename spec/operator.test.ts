/**
 * The operator surface on a running CLI: hooks, pidfile, process name, environment, working directory,
 * umask, error log and its reopening on USR1, privileges, daemon, the control channel, graceful timeout,
 * and the clean refusals of POSIX-only settings on Windows.
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, renameSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { until } from './helpers/wait.js';
import { ROOT, fixture, requestsInFlight, runCli, startCli } from './helpers/servers.js';
import { exchange } from './helpers/wire.js';
import { AS_ROOT_FOR_NOBODY } from './helpers/probes.js';
import { refuseUnsupported } from '../source/cli/process-settings.js';
import { defaultSettings, SETTINGS, type SettingName } from '../source/config/settings.js';
import type { SettingSource } from '../source/config/config.js';

const tmpDir = () => mkdtempSync(path.join(os.tmpdir(), 'grainbows-op-'));

/** A server writing its error log and its access log to files of a fresh directory. */
async function startWithLogFiles() {
  const dir = tmpDir();
  const errorLog = path.join(dir, 'error.log');
  const accessLog = path.join(dir, 'access.log');
  const cli = await startCli(['-b', '127.0.0.1:0', '--error-logfile', errorLog, '--access-logfile', accessLog, fixture('identify.js')], { logFile: errorLog });
  return { dir, errorLog, accessLog, cli };
}

const linesOf = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8').split('\n').filter(Boolean) : []);

describe('operator surface (CLI)', () => {
  it('runs every hook from the config file; a hook that throws is logged and the request is still served', async () => {
    const dir = tmpDir();
    const hookLog = path.join(dir, 'hooks.log');
    const cli = await startCli(['-c', fixture('hooks.config.js'), '-b', '127.0.0.1:0', fixture('identify.js')], { env: { HOOK_LOG: hookLog } });
    let stopped = false;
    try {
      const answer = await fetch(`${cli.url}/hello`);
      await answer.text();
      assert.equal(answer.headers.get('x-pre-request'), 'seen', 'preRequest ran before the app');
      const broken = await fetch(`${cli.url}/hook-throws`);
      assert.equal(broken.status, 200, 'a throwing hook does not break the request');
      await cli.waitFor(/hook preRequest failed: Error: preRequest hook broke/);
      await until(() => linesOf(hookLog).includes('postRequest GET /hello 200'), 'postRequest');
      cli.child.kill('SIGHUP');
      await cli.waitFor(/Reloaded: generation 2/);
      const exit = await cli.stop('SIGTERM');
      stopped = true;
      assert.equal(exit.status, 0);
      const lines = linesOf(hookLog);
      assert.equal(lines[0], 'onStarting');
      assert.ok(lines.includes('whenReady 1'));
      assert.ok(lines.includes('onReload'));
      assert.equal(lines.filter((line) => line.startsWith('actorInit')).length, 4, 'two actors per generation, two generations');
      assert.equal(lines.filter((line) => line.startsWith('actorExit')).length, 4);
      assert.equal(lines.at(-1), 'onExit');
    } finally {
      if (!stopped) await cli.stop('SIGKILL');
    }
  });

  it('-p writes the pidfile once serving and removes it on exit; a second server on a live pidfile is refused', async () => {
    const pidfile = path.join(tmpDir(), 'grainbows.pid');
    const cli = await startCli(['-b', '127.0.0.1:0', '-p', pidfile, fixture('identify.js')]);
    try {
      await until(() => existsSync(pidfile), 'the pidfile');
      assert.equal(readFileSync(pidfile, 'utf8').trim(), String(cli.pid));
      const second = await runCli(['-b', '127.0.0.1:0', '-p', pidfile, fixture('identify.js')]);
      assert.equal(second.status, 2);
      assert.match(second.stderr, /^grainbows: pidfile .* names pid \d+, which is running/m);
    } finally {
      await cli.stop('SIGTERM');
    }
    assert.equal(existsSync(pidfile), false, 'removed on exit');
  });

  it('-n names the process; -e sets the environment; --chdir moves before the app loads; -m sets the umask', async () => {
    const cli = await startCli([
      '-b',
      '127.0.0.1:0',
      '-n',
      'shop-api',
      '-e',
      'GREETING=hej',
      '--chdir',
      path.join(ROOT, 'spec/fixtures'),
      '-m',
      '0o027',
      'process-info.js',
    ]);
    try {
      const info = (await (await fetch(cli.url)).json()) as { cwd: string; greeting: string; umask: number };
      assert.equal(info.greeting, 'hej');
      assert.equal(info.cwd, path.join(ROOT, 'spec/fixtures'));
      assert.equal(info.umask, 0o027);
      if (process.platform === 'linux') {
        const cmdline = readFileSync(`/proc/${cli.pid}/cmdline`, 'utf8');
        assert.match(cmdline, /^grainbows: shop-api/);
      }
    } finally {
      await cli.stop('SIGTERM');
    }
  });

  it('--error-logfile and --access-logfile are reopened on USR1 after being moved away (log rotation)', async () => {
    const { errorLog, accessLog, cli } = await startWithLogFiles();
    try {
      await (await fetch(`${cli.url}/before`)).text();
      await until(() => linesOf(accessLog).length === 1, 'the first access line');
      renameSync(errorLog, `${errorLog}.1`);
      renameSync(accessLog, `${accessLog}.1`);
      cli.child.kill('SIGUSR1');
      await until(() => linesOf(errorLog).some((line) => line.includes('Reopened log files')), 'the reopened error log');
      await (await fetch(`${cli.url}/after`)).text();
      await until(() => linesOf(accessLog).length === 1, 'an access line in the fresh file');
      assert.match(linesOf(accessLog)[0], /GET \/after/);
      assert.match(linesOf(`${accessLog}.1`)[0], /GET \/before/);
      assert.ok(linesOf(`${errorLog}.1`).some((line) => line.includes('Listening at')));
    } finally {
      await cli.stop('SIGTERM');
    }
  });

  it('-u and -g drop privileges after binding, before the app loads', AS_ROOT_FOR_NOBODY, async () => {
    const cli = await startCli(['-b', '127.0.0.1:0', '-u', 'nobody', '-g', 'nogroup', fixture('process-info.js')]);
    try {
      const info = (await (await fetch(cli.url)).json()) as { uid: number; gid: number };
      assert.notEqual(info.uid, 0);
      assert.notEqual(info.gid, 0);
      assert.equal(readFileSync(`/proc/${cli.pid}/status`, 'utf8').match(/^Uid:\s+(\d+)/m)?.[1], String(info.uid));
    } finally {
      await cli.stop('SIGTERM');
    }
  });

  it('USR1 when the log path cannot be opened again: lines go on to the old file, after one error line saying so', async () => {
    const { dir, errorLog, accessLog, cli } = await startWithLogFiles();
    try {
      renameSync(errorLog, `${errorLog}.1`);
      renameSync(accessLog, `${accessLog}.1`);
      // Neither path can be opened now (as a root-owned directory cannot be by `-u nobody`): each is a link into a directory that does not exist.
      symlinkSync(path.join(dir, 'gone', 'error.log'), errorLog);
      symlinkSync(path.join(dir, 'gone', 'access.log'), accessLog);
      cli.child.kill('SIGUSR1');
      await until(() => linesOf(`${errorLog}.1`).filter((line) => line.includes('Cannot reopen a log file')).length === 2, 'one error line per log');
      assert.ok(!linesOf(`${errorLog}.1`).some((line) => line.includes('Reopened log files')));
      await (await fetch(`${cli.url}/after`)).text();
      await until(() => linesOf(`${accessLog}.1`).some((line) => line.includes('GET /after')), 'the access line in the old file');
      cli.child.kill('SIGTTIN');
      await until(() => linesOf(`${errorLog}.1`).some((line) => /Booted actor 2/.test(line)), 'later error-log lines in the old file');
    } finally {
      await cli.stop('SIGTERM');
    }
  });

  it('-u: USR1 after logrotate in a directory only root may write keeps every line in the old file, after one error line', AS_ROOT_FOR_NOBODY, async () => {
    const dir = tmpDir();
    chmodSync(dir, 0o755);
    const errorLog = path.join(dir, 'error.log');
    const cli = await startCli(['-b', '127.0.0.1:0', '-u', 'nobody', '-g', 'nogroup', '--error-logfile', errorLog, fixture('identify.js')], {
      logFile: errorLog,
    });
    try {
      renameSync(errorLog, `${errorLog}.1`); // what logrotate does, as root
      cli.child.kill('SIGUSR1');
      await until(() => linesOf(`${errorLog}.1`).some((line) => /Cannot reopen a log file.*EACCES/.test(line)), 'the error line in the old file');
      cli.child.kill('SIGTTIN');
      await until(() => linesOf(`${errorLog}.1`).some((line) => /Booted actor 2/.test(line)), 'later lines in the old file');
      assert.equal(existsSync(errorLog), false);
    } finally {
      const exit = await cli.stop('SIGTERM');
      assert.equal(exit.status, 0);
    }
  });

  it(
    '-u with a pidfile in a directory only root may write: written before the drop; ctl --pid run by root finds the control socket',
    AS_ROOT_FOR_NOBODY,
    async () => {
      const dir = tmpDir();
      chmodSync(dir, 0o755);
      const pidfile = path.join(dir, 'grainbows.pid');
      const cli = await startCli(['-b', '127.0.0.1:0', '-u', 'nobody', '-g', 'nogroup', '-p', pidfile, fixture('process-info.js')]);
      try {
        assert.equal(readFileSync(pidfile, 'utf8').trim(), String(cli.pid));
        const status = await runCli(['ctl', '--pid', pidfile, '--json', 'status']);
        assert.equal(status.status, 0, status.stderr);
        assert.equal((JSON.parse(status.stdout) as { result: { pid: number } }).result.pid, cli.pid);
      } finally {
        const exit = await cli.stop('SIGTERM');
        assert.equal(exit.status, 0, exit.stderr);
      }
    },
  );

  it('-D detaches: the command returns 0 once the daemon serves; the daemon runs in its own session', async () => {
    const dir = tmpDir();
    const pidfile = path.join(dir, 'daemon.pid');
    const errorLog = path.join(dir, 'error.log');
    const started = await runCli(['-D', '-b', '127.0.0.1:0', '-p', pidfile, '--error-logfile', errorLog, fixture('identify.js')]);
    assert.equal(started.status, 0, started.stderr);
    const pid = Number(readFileSync(pidfile, 'utf8').trim());
    try {
      const url = /Listening at: (\S+)/.exec(readFileSync(errorLog, 'utf8'))?.[1];
      assert.ok(url, 'the daemon logged its address');
      assert.equal((await fetch(url)).status, 200);
      if (process.platform === 'linux') {
        const stat = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
        assert.equal(stat[3], String(pid), 'session leader (setsid)');
      }
    } finally {
      process.kill(pid, 'SIGTERM');
    }
    await until(() => !existsSync(pidfile), 'the daemon to exit and remove its pidfile');
    const failed = await runCli(['-D', '-b', '127.0.0.1:0', fixture('does-not-exist.js')]);
    assert.equal(failed.status, 4, 'a daemon that cannot start reports why to the command that started it');
    assert.match(failed.stderr, /^grainbows: app module not found/m);
  });

  it('grainbows ctl: status, resize, reload and stop over the control channel', async () => {
    const pidfile = path.join(tmpDir(), 'ctl.pid');
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '2', '-p', pidfile, fixture('identify.js')]);
    const ctl = (...args: string[]) => runCli(['ctl', '--pid', pidfile, ...args]);
    try {
      await until(() => existsSync(pidfile), 'the pidfile');
      await (await fetch(cli.url)).text();
      const status = await ctl('--json', 'status');
      assert.equal(status.status, 0, status.stderr);
      const report = JSON.parse(status.stdout).result as {
        pid: number;
        generation: number;
        actors: Array<{ requestsServed: number; state: string; generation: number }>;
      };
      assert.equal(report.pid, cli.pid);
      assert.equal(report.actors.length, 2);
      assert.equal(
        report.actors.reduce((sum, actor) => sum + actor.requestsServed, 0),
        1,
      );
      const table = await ctl('status');
      assert.match(table.stdout, /actor\s+gen\s+state\s+conns\s+served\s+in-flight\s+loop %\s+heap MB\s+age/);
      const resized = await ctl('--json', 'resize', '3');
      assert.equal(JSON.parse(resized.stdout).result.actors.length, 3);
      const reloaded = await ctl('--json', 'reload');
      const afterReload = JSON.parse(reloaded.stdout).result as typeof report;
      assert.equal(afterReload.generation, 2);
      assert.ok(afterReload.actors.every((actor) => actor.generation === 2));
      const stop = await ctl('stop');
      assert.equal(stop.status, 0);
      const exit = await cli.stop('SIGCONT'); // harmless: waits for the exit the ctl stop caused
      assert.equal(exit.status, 0);
    } finally {
      await cli.stop('SIGKILL');
    }
    const gone = await ctl('status');
    assert.equal(gone.status, 1);
    assert.match(gone.stderr, /^grainbows ctl: cannot read pidfile|^grainbows ctl: no grainbows answers/);
    const usage = await runCli(['ctl', 'status']);
    assert.equal(usage.status, 2);
  });

  it('--graceful-timeout bounds how long TERM waits for requests in flight', async () => {
    const pidfile = path.join(mkdtempSync(path.join(os.tmpdir(), 'grainbows-graceful-')), 'server.pid');
    const cli = await startCli(['-b', '127.0.0.1:0', '--graceful-timeout', '1', '-p', pidfile, fixture('identify.js')]);
    const port = Number(new URL(cli.url).port);
    const slow = exchange(port, 'GET /?sleep=10000 HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1, timeoutMs: 12_000 });
    await until(async () => (await requestsInFlight(pidfile)) === 1, 'the slow request in flight', 5000);
    const started = Date.now();
    const exit = await cli.stop('SIGTERM');
    const took = Date.now() - started;
    assert.equal(exit.status, 0);
    assert.ok(took >= 900 && took < 4000, `stopped after ${took} ms (graceful timeout 1 s)`);
    assert.match(exit.stderr, /graceful timeout \(1 s\)/);
    assert.ok((await slow).closed);
  });
});

describe('POSIX-only settings on Windows', () => {
  const sourcesWith = (name: SettingName): Record<SettingName, SettingSource> => {
    const sources = Object.fromEntries(SETTINGS.map((row) => [row.name, 'default'])) as Record<SettingName, SettingSource>;
    sources[name] = 'command line';
    return sources;
  };
  for (const name of ['daemon', 'user', 'group', 'umask'] as const) {
    it(`--${name} is refused with one line naming the Windows alternative`, () => {
      assert.throws(
        () => refuseUnsupported(sourcesWith(name), 'win32'),
        (error: Error & { code?: string }) => {
          assert.equal(error.code, 'E_USAGE');
          assert.match(error.message, new RegExp(`^--${name} is POSIX only: on Windows .+`));
          assert.ok(!error.message.includes('\n'));
          return true;
        },
      );
      assert.doesNotThrow(() => refuseUnsupported(sourcesWith(name), 'linux'));
    });
  }
  it('nothing is refused when no POSIX-only setting is given', () => {
    assert.ok(defaultSettings());
    assert.doesNotThrow(() => refuseUnsupported(sourcesWith('workers'), 'win32'));
  });
});
