/**
 * --reload and -d: saving the app's code reloads it (a fresh generation imports everything anew) while
 * requests keep flowing; a broken save keeps the old code serving until it is fixed.
 */
import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { until } from './helpers/wait.js';
import { runCli, startCli } from './helpers/servers.js';
import { startLoad } from './helpers/load.js';

/** An app whose answer comes from a module it imports, in a fresh directory. */
function project(): { dir: string; app: string; setMessage: (code: string) => void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-reload-'));
  mkdirSync(path.join(dir, 'lib'));
  mkdirSync(path.join(dir, 'node_modules'));
  const app = path.join(dir, 'app.js');
  writeFileSync(app, "import { message } from './lib/message.js';\nexport default (req, res) => res.end(message);\n");
  const setMessage = (code: string) => writeFileSync(path.join(dir, 'lib/message.js'), code);
  setMessage("export const message = 'one';\n");
  return { dir, app, setMessage };
}

async function answer(url: string): Promise<string> {
  return (await fetch(url, { headers: { connection: 'close' } })).text();
}

describe('--reload', () => {
  it('reloads when an imported module changes, under load with 0 failed requests; ignores other files', async () => {
    const { dir, app, setMessage } = project();
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '2', '--reload', '--graceful-timeout', '5', app]);
    try {
      await cli.waitFor(/Reloading on code changes in /);
      assert.equal(await answer(cli.url), 'one');
      const load = startLoad(cli.url, { concurrency: 8 });
      await load.reach(500);
      // Not code, or not ours: no reload.
      writeFileSync(path.join(dir, 'notes.txt'), 'hello');
      writeFileSync(path.join(dir, 'node_modules/dep.js'), 'export {};');
      await sleep(800);
      assert.doesNotMatch(cli.output(), /Changed:/, 'a .txt file and node_modules are not watched');
      setMessage("export const message = 'two';\n");
      await until(async () => (await answer(cli.url)) === 'two', 'the new code to answer');
      await load.reach(load.count + 500);
      const result = await load.stop();
      assert.equal(result.failed, 0, result.failures.join('\n'));
      assert.match(cli.output(), /Changed: .*lib\/message\.js; reloading/);
      assert.ok((result.bodies.get('two') ?? 0) > 0 && (result.bodies.get('one') ?? 0) > 0);
    } finally {
      await cli.stop();
    }
  });

  it('keeps the old code serving when a save breaks the app, and reloads once it is fixed', async () => {
    const { app, setMessage } = project();
    const cli = await startCli(['-b', '127.0.0.1:0', '--reload', app]);
    try {
      await cli.waitFor(/Reloading on code changes in /);
      setMessage('export const message = ;\n');
      await cli.waitFor(/reload failed: the new generation did not start, the old one keeps serving: .*message\.js/);
      assert.equal(await answer(cli.url), 'one');
      setMessage("export const message = 'fixed';\n");
      await until(async () => (await answer(cli.url)) === 'fixed', 'the fixed code to answer');
    } finally {
      await cli.stop();
    }
  });

  it('watches --reload-extra-file whatever its extension', async () => {
    const { dir, app } = project();
    const template = path.join(dir, 'page.html');
    writeFileSync(template, '<p>one</p>');
    const cli = await startCli(['-b', '127.0.0.1:0', '--reload', '--reload-extra-file', template, app]);
    try {
      await cli.waitFor(/Reloading on code changes in .*page\.html/);
      writeFileSync(template, '<p>two</p>');
      await cli.waitFor(/Changed: .*page\.html; reloading/);
      await cli.waitFor(/Reloaded: generation 2 serving/);
    } finally {
      await cli.stop();
    }
  });
});

describe('-d/--debug', () => {
  it('runs one actor at log level debug with reload on, whatever -w and --log-level say', async () => {
    const { app, setMessage } = project();
    const printed = await runCli(['-d', '-w', '3', '--log-level', 'warning', '--print-config', app]);
    assert.match(printed.stdout, /^workers += 1 {2}# from --debug$/m);
    assert.match(printed.stdout, /^log_level += "debug" {2}# from --debug$/m);
    assert.match(printed.stdout, /^reload += true {2}# from --debug$/m);
    const cli = await startCli(['-b', '127.0.0.1:0', '-d', '-w', '3', app]);
    try {
      await cli.waitFor(/\[DEBUG\] .*actor 1 serving .* as a listener app/);
      assert.doesNotMatch(cli.output(), /Booted actor 2/, 'one actor only');
      await cli.waitFor(/Reloading on code changes in /);
      setMessage("export const message = 'debugged';\n");
      await until(async () => (await answer(cli.url)) === 'debugged', 'the reload');
    } finally {
      await cli.stop();
    }
  });
});
