/**
 * Started by npm, the CLI stops with it (source/cli/parent-watch.ts): `npx grainbows` sent TERM ends npm and
 * its `sh -c` without passing the signal on, and the server must not serve on unreachable. Started any
 * other way, the server outlives its parent, as gunicorn does.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, symlinkSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { after, describe, it } from 'node:test';
import { CLI, fixture, ROOT } from './helpers/servers.js';
import { until } from './helpers/wait.js';
import { isAlive, isRefused } from './helpers/probes.js';

/** The environment without npm's variables: as from a plain shell. */
function withoutNpm(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !name.startsWith('npm_')));
}

/** Starts `command`, and resolves once its output names the serving process and its port. */
async function startServing(command: string, args: string[], options: { cwd: string; env: NodeJS.ProcessEnv }) {
  const child = spawn(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  child.stderr.setEncoding('utf8').on('data', (chunk: string) => (output += chunk));
  const match = await until(() => /Listening at: http:\/\/127\.0\.0\.1:(\d+) \((\d+)\)/.exec(output), `the server to listen:\n${output}`, 20_000);
  return { child, port: Number(match[1]), pid: Number(match[2]), output: () => output };
}

describe(
  'stopping with the npm command that started the server',
  { skip: process.platform === 'win32' ? 'POSIX: a parent that ends re-parents its children' : false },
  () => {
    const started: number[] = [];
    after(() => {
      for (const pid of started) if (isAlive(pid)) process.kill(pid, 'SIGKILL');
    });

    // A project that has grainbows installed, as npm links it: node_modules/.bin/grainbows.
    const project = mkdtempSync(path.join(os.tmpdir(), 'grainbows-npx-'));
    mkdirSync(path.join(project, 'node_modules', '.bin'), { recursive: true });
    symlinkSync(ROOT, path.join(project, 'node_modules', 'grainbows'));
    symlinkSync(path.join('..', 'grainbows', path.relative(ROOT, CLI)), path.join(project, 'node_modules', '.bin', 'grainbows'));
    chmodSync(CLI, 0o755); // as npm makes a bin it links executable

    const cases = [
      { name: 'with the default main-thread flags (a launcher on Node 20, the server itself after execve)', flags: [] },
      { name: 'without a relaunch (the server watches its parent itself)', flags: ['--memory-reducer', '--main-semi-space-size', '0', '--malloc-arenas', '0'] },
    ];
    for (const { name, flags } of cases) {
      it(`TERM to npx stops the server gracefully, ${name}`, async () => {
        const npx = await startServing('npx', ['--no-install', 'grainbows', '-b', '127.0.0.1:0', '-w', '1', ...flags, fixture('echo.js')], {
          cwd: project,
          env: withoutNpm(process.env),
        });
        started.push(npx.pid);
        npx.child.kill('SIGTERM');
        await until(() => !isAlive(npx.pid), `the server (${npx.pid}) to stop after npx did:\n${npx.output()}`, 15_000);
        assert.ok(await isRefused(npx.port), 'nothing listens any more');
        assert.match(npx.output(), /Shutting down: Master/, 'a graceful stop, not a kill');
      });
    }

    it('started from a shell without npm, the server outlives it', async () => {
      // `; true` keeps sh from exec()ing node, so node's parent is the shell, which is then killed.
      const shell = await startServing('sh', ['-c', `"${process.execPath}" "${CLI}" -b 127.0.0.1:0 -w 1 "${fixture('echo.js')}"; true`], {
        cwd: ROOT,
        env: withoutNpm(process.env),
      });
      started.push(shell.pid);
      shell.child.kill('SIGKILL');
      await new Promise((resolve) => shell.child.once('exit', resolve));
      // Longer than the parent check's period (500 ms), then still serving.
      await new Promise((resolve) => setTimeout(resolve, 1500));
      assert.ok(isAlive(shell.pid), 'still running');
      assert.ok(!(await isRefused(shell.port)), 'still listening');
      process.kill(shell.pid, 'SIGTERM');
      await until(() => !isAlive(shell.pid), 'the server to stop on TERM', 15_000);
    });
  },
);
