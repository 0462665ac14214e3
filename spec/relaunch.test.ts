/**
 * The CLI starts node again with `--no-memory-reducer` for the main thread (source/cli/relaunch.ts): in place
 * on POSIX (process.execve, or the C library's through koffi), else as a child that the launcher signals for
 * and whose status it returns. An installation without koffi (spec/fixtures/without-koffi.mjs) shows the
 * launcher on Node 20.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from './helpers/wait.js';
import { fixture, runCli, startCli, type RunningCli } from './helpers/servers.js';
import { isAlive } from './helpers/probes.js';
import { pathToFileURL } from 'node:url';
import { keepSemiSpaceFlagToMain, missingMainFlags } from '../source/cli/relaunch.js';
import { keepOpenOnExecMarker } from '../shared/close-on-exec.js';
import { forgetStartEnvironment, missingStartEnvironment, startEnvironment } from '../source/lifecycle/start-environment.js';

const hasExecve = typeof (process as NodeJS.Process & { execve?: unknown }).execve === 'function';
const linux = process.platform === 'linux';
const hasKoffi = (await keepOpenOnExecMarker()) !== undefined;
/** How the CLI is run: as installed, and without its optional koffi. `inPlace`: whether it can execve. */
const INSTALLATIONS = [
  { name: 'as installed', nodeFlags: [], inPlace: process.platform !== 'win32' && (hasExecve || hasKoffi) },
  { name: 'without koffi', nodeFlags: ['--import', pathToFileURL(fixture('without-koffi.mjs')).href], inPlace: process.platform !== 'win32' && hasExecve },
];

const parentOf = (pid: number) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[1]);

/** The process title hides the arguments; environ and the execArgv the app reports do not. */
async function execArgvOf(cli: RunningCli): Promise<string[]> {
  const info = (await (await fetch(`${cli.url}/`)).json()) as { execArgv?: string[] };
  return info.execArgv ?? [];
}

describe('main thread started without V8 memory reducer, with a small young generation', () => {
  it("missingMainFlags: what the settings ask for and node lacks; node's own young-generation size wins", () => {
    const defaults = { memoryReducer: false, mainSemiSpaceSize: 2 };
    assert.deepEqual(missingMainFlags(defaults, []), ['--no-memory-reducer', '--max-semi-space-size=2']);
    assert.deepEqual(missingMainFlags(defaults, ['--max-semi-space-size=8']), ['--no-memory-reducer']);
    assert.deepEqual(missingMainFlags(defaults, ['--no-memory-reducer', '--max_semi_space_size=1']), []);
    assert.deepEqual(missingMainFlags({ memoryReducer: true, mainSemiSpaceSize: 0 }, []), [], 'nothing to add: no relaunch');
    assert.deepEqual(missingMainFlags({ memoryReducer: true, mainSemiSpaceSize: 4 }, []), ['--max-semi-space-size=4']);
  });

  it('missingStartEnvironment: MALLOC_ARENA_MAX on Linux unless the operator set it; forgetStartEnvironment takes back only what it added', () => {
    const added = missingStartEnvironment({ mallocArenas: 2 }, {}, 'linux');
    assert.equal(added.MALLOC_ARENA_MAX, '2');
    assert.deepEqual(missingStartEnvironment({ mallocArenas: 2 }, { MALLOC_ARENA_MAX: '4' }, 'linux'), {}, "the operator's own wins");
    assert.deepEqual(missingStartEnvironment({ mallocArenas: 0 }, {}, 'linux'), {}, "0: glibc's default");
    assert.deepEqual(missingStartEnvironment({ mallocArenas: 2 }, {}, 'win32'), {}, 'glibc only');
    const started: NodeJS.ProcessEnv = { ...added, PATH: '/bin' };
    forgetStartEnvironment(started);
    assert.deepEqual(started, { PATH: '/bin' });
    assert.deepEqual(startEnvironment(), added, 'kept for a binary upgrade’s successor');
    const own: NodeJS.ProcessEnv = { MALLOC_ARENA_MAX: '4' };
    forgetStartEnvironment(own);
    assert.deepEqual(own, { MALLOC_ARENA_MAX: '4' }, 'an operator-set value stays for the children too');
  });

  it(
    '--malloc-arenas: the serving process starts with MALLOC_ARENA_MAX (glibc reads it then), and the app does not see it',
    { skip: !linux && 'glibc: Linux only' },
    async () => {
      const cli = await startCli(['-b', '127.0.0.1:0', '--malloc-arenas', '3', fixture('process-info.js')]);
      try {
        const startEnvironment = readFileSync(`/proc/${cli.pid}/environ`, 'utf8').split('\0');
        assert.ok(startEnvironment.includes('MALLOC_ARENA_MAX=3'), 'in the environment the server process started with');
        const { mallocArenaMax } = (await (await fetch(`${cli.url}/`)).json()) as { mallocArenaMax: string | null };
        assert.equal(mallocArenaMax, null, "not in the app's process.env, nor in its children's");
      } finally {
        await cli.stop('SIGTERM');
      }
    },
  );

  it("keepSemiSpaceFlagToMain: clears node's young-generation flag once main is up, and only when there is one", () => {
    const set: string[] = [];
    const v8 = { setFlagsFromString: (flags: string) => set.push(flags) };
    assert.equal(keepSemiSpaceFlagToMain(v8, ['--no-memory-reducer']), false);
    assert.deepEqual(set, []);
    assert.equal(keepSemiSpaceFlagToMain(v8, ['--max-semi-space-size=2']), true);
    assert.equal(keepSemiSpaceFlagToMain(v8, ['--max_semi_space_size=8']), true);
    assert.deepEqual(set, ['--max-semi-space-size=0', '--max-semi-space-size=0']);
  });

  it("main's 2 MB semi-spaces stay main's: an actor's young generation grows to V8's 16 MB semi-spaces under allocation", async () => {
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '1', fixture('young-generation.js')]);
    try {
      const { newSpaceBytes, execArgv } = (await (await fetch(`${cli.url}/`)).json()) as { newSpaceBytes: number; execArgv: string[] };
      assert.ok(execArgv.includes('--max-semi-space-size=2'), 'main has its flag');
      assert.ok(newSpaceBytes > 8 * 2 ** 20, `the actor's new space grew past 2 × 2 MB: ${newSpaceBytes} bytes`);
    } finally {
      await cli.stop('SIGTERM');
    }
  });

  it('--heap-trim-after: a quiet actor and main give back the young generation a burst grew', async () => {
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '1', '--heap-trim-after', '2', '--log-level', 'debug', fixture('young-generation.js')]);
    try {
      const grown = ((await (await fetch(`${cli.url}/`)).json()) as { newSpaceBytes: number }).newSpaceBytes;
      assert.ok(grown > 8 * 2 ** 20, `the burst grew the actor's new space: ${grown} bytes`);
      const trimmedFrom = cli.output().length;
      const [line, before, after] = await cli.waitFor(/\[actor 1\] heap trimmed after a quiet stretch, ([\d.]+) → ([\d.]+) MB/, 15_000);
      assert.ok(cli.output().indexOf(line) >= trimmedFrom, 'trimmed after the burst, not before it');
      assert.ok(Number(before) - Number(after) >= 8, `the actor's heap shrank by its grown young generation: ${line}`);
      await cli.waitFor(/main: heap trimmed after a quiet stretch/, 15_000);
    } finally {
      await cli.stop('SIGTERM');
    }
  });

  for (const { name, nodeFlags, inPlace } of INSTALLATIONS)
    it(`${name}: serves with --no-memory-reducer --max-semi-space-size=2 in main (${inPlace ? 'in place, same pid' : "as the launcher's child"}); signals to the started process reach it`, async () => {
      const cli = await startCli(['-b', '127.0.0.1:0', fixture('process-info.js')], { nodeFlags });
      let stopped = false;
      try {
        const execArgv = await execArgvOf(cli);
        assert.ok(execArgv.includes('--no-memory-reducer'), 'the serving process has the flags');
        assert.ok(execArgv.includes('--max-semi-space-size=2'), execArgv.join(' '));
        if (inPlace) assert.equal(cli.pid, cli.child.pid, 'execve keeps the pid');
        else {
          assert.notEqual(cli.pid, cli.child.pid);
          if (linux) assert.equal(parentOf(cli.pid), cli.child.pid, "the server is the launcher's child");
        }
        cli.child.kill('SIGHUP');
        await cli.waitFor(/Reloaded: generation 2 serving/);
        cli.child.kill('SIGTTIN');
        await cli.waitFor(/Booted actor 3 \(generation 2/);
        const exit = await cli.stop('SIGTERM');
        stopped = true;
        assert.equal(exit.status, 0, 'the status of the server, through the launcher');
        assert.match(exit.stderr, /Handling signal: term/);
        await until(() => !isAlive(cli.pid), 'the server to be gone');
      } finally {
        if (!stopped) await cli.stop('SIGKILL');
      }
    });

  it('--memory-reducer --main-semi-space-size 0 --malloc-arenas 0: no relaunch, the started process serves', async () => {
    const cli = await startCli(['-b', '127.0.0.1:0', '--memory-reducer', '--main-semi-space-size', '0', '--malloc-arenas', '0', fixture('process-info.js')]);
    try {
      assert.equal(cli.pid, cli.child.pid);
      assert.equal((await execArgvOf(cli)).includes('--no-memory-reducer'), false);
    } finally {
      await cli.stop('SIGTERM');
    }
  });

  it('a failure to start keeps its status and its one line through the launcher', async () => {
    const result = await runCli(['-b', '127.0.0.1:0', fixture('does-not-exist.js')]);
    assert.equal(result.status, 4);
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('grainbows:'));
    assert.equal(errors.length, 1, result.stderr);
    assert.match(errors[0], /^grainbows: app module not found/);
  });

  it(
    'without koffi: a launcher killed with SIGKILL leaves no server behind: it stops gracefully',
    { skip: hasExecve ? 'no launcher where Node has execve' : process.platform === 'win32' && 'POSIX signals' },
    async () => {
      const cli = await startCli(['-b', '127.0.0.1:0', fixture('process-info.js')], { nodeFlags: INSTALLATIONS[1].nodeFlags });
      assert.notEqual(cli.pid, cli.child.pid, 'a launcher and its child');
      const port = new URL(cli.url).port;
      cli.child.kill('SIGKILL');
      await until(() => !isAlive(cli.pid), 'the orphaned server to stop');
      assert.match(cli.output(), /The launching process is gone; stopping gracefully/);
      await sleep(50);
      await assert.rejects(fetch(`http://127.0.0.1:${port}/`), 'nothing listens any more');
    },
  );
});
