/**
 * Settings from every layer: defaults, config file, GRAINBOWS_CMD_ARGS, command line, observed on running
 * servers; --print-config, --check-config; the generated docs/settings.md; config errors.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { CLI, ROOT, fixture, runCli, startCli } from './helpers/servers.js';
import { exchange } from './helpers/wire.js';
import { until } from './helpers/wait.js';
import { renderSettingsDoc } from '../source/config/settings-doc.js';
import { SETTINGS, type SettingRow } from '../source/config/settings.js';
import { parseArguments } from '../source/config/arguments.js';

function dirWithConfig(source: string, name = 'grainbows.config.js'): string {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-config-'));
  writeFileSync(path.join(dir, name), source);
  return dir;
}

/** How many distinct actors answer 9 overlapping slow requests (least-loaded dispatch spreads them). */
async function actorsServing(url: string): Promise<number> {
  const answers = await Promise.all(Array.from({ length: 9 }, () => fetch(`${url}/?sleep=300`, { headers: { connection: 'close' } }).then((r) => r.text())));
  return new Set(answers).size;
}

describe('settings', () => {
  it('docs/settings.md is generated from the table and up to date (npm run docs)', () => {
    assert.equal(readFileSync(path.join(ROOT, 'docs/settings.md'), 'utf8'), renderSettingsDoc());
  });

  it('every long flag, alias and short flag sets its setting (--pid sets pidfile, --dirty-timeout task_timeout)', async () => {
    const sample: Partial<Record<string, string>> = {
      bind: '127.0.0.1:1',
      tasks: 'x.js:2',
      rawEnv: 'A=1',
      reloadExtraFile: 'x',
      umask: '022',
      logLevel: 'debug',
    };
    for (const row of SETTINGS as ReadonlyArray<SettingRow>) {
      const value = sample[row.name] ?? (row.type === 'boolean' ? undefined : String(row.default === '' ? 'x' : row.default));
      const spellings = [`--${row.flag}`, ...(row.aliases ?? []).map((alias) => `--${alias}`), ...(row.short ? [`-${row.short}`] : [])];
      for (const flag of spellings) {
        const words = value === undefined ? [flag] : [flag, value];
        let parsed: unknown;
        try {
          parsed = (await parseArguments(words, 'command line', import.meta)).values[row.name];
        } catch (error) {
          // A value the row refuses (an empty path, a choice) still proves the flag reached it.
          assert.match(String(error), new RegExp(`--${row.flag}`), `${flag}: ${String(error)}`);
          continue;
        }
        assert.notEqual(parsed, undefined, `${flag} ${value ?? ''} did not set ${row.name}`);
      }
    }
  });

  it('runs the seed config (use, worker_connections) translated to JS, and its workers take effect', async () => {
    const dir = dirWithConfig("export const use = 'coroutine';\nexport const worker_connections = 1000;\nexport const workers = 3;\n");
    const cli = await startCli(['-b', '127.0.0.1:0', fixture('identify.js')], { cwd: dir });
    try {
      assert.match(cli.output(), /Config file: .*grainbows\.config\.js/);
      assert.equal(await actorsServing(cli.url), 3);
    } finally {
      await cli.stop();
    }
  });

  it('ranks the layers: config file < GRAINBOWS_CMD_ARGS < command line', async () => {
    const dir = dirWithConfig('export default { workers: 3, keepAlive: 10 };\n');
    const env = { GRAINBOWS_CMD_ARGS: "-w 2 --log-level 'warning'" };
    const printed = await runCli(['--print-config', '--backlog', '100'], { cwd: dir, env });
    assert.equal(printed.status, 0, printed.stderr);
    assert.match(printed.stdout, /^workers\s+= 2 {2}# from GRAINBOWS_CMD_ARGS$/m);
    assert.match(printed.stdout, /^keep_alive\s+= 10 {2}# from config file$/m);
    assert.match(printed.stdout, /^backlog\s+= 100 {2}# from command line$/m);
    assert.match(printed.stdout, /^log_level\s+= "warning" {2}# from GRAINBOWS_CMD_ARGS$/m);
    assert.match(printed.stdout, /^worker_connections\s+= 1000$/m);
    // A mode is shown as one: 0o22, not 18.
    const umask = await runCli(['--print-config', '--umask', '022'], { cwd: dir, env });
    assert.match(umask.stdout, /^umask\s+= 0o22 {2}# from command line$/m);

    const envWins = await startCli(['-b', '127.0.0.1:0', '--log-level', 'info', fixture('identify.js')], { cwd: dir, env });
    try {
      assert.equal(await actorsServing(envWins.url), 2, 'GRAINBOWS_CMD_ARGS beats the config file');
      const keepAlive = await exchange(Number(new URL(envWins.url).port), 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1 });
      assert.equal(keepAlive.responses[0].headers['keep-alive'], 'timeout=10', 'keep_alive from the config file');
    } finally {
      await envWins.stop();
    }
    const flagWins = await startCli(['-b', '127.0.0.1:0', '-w', '1', '--log-level', 'info', fixture('identify.js')], { cwd: dir, env });
    try {
      assert.equal(await actorsServing(flagWins.url), 1, 'the command line beats GRAINBOWS_CMD_ARGS');
    } finally {
      await flagWins.stop();
    }
  });

  it('WEB_CONCURRENCY sets workers above the default and below the config file; a bad value is a config error', async () => {
    const fromVariable = await startCli(['-b', '127.0.0.1:0', fixture('identify.js')], { env: { WEB_CONCURRENCY: '2' } });
    try {
      assert.equal(await actorsServing(fromVariable.url), 2);
    } finally {
      await fromVariable.stop();
    }
    const dir = dirWithConfig('export const workers = 3;\n');
    const printed = await runCli(['--print-config', fixture('identify.js')], { cwd: dir, env: { WEB_CONCURRENCY: '2', FORWARDED_ALLOW_IPS: '10.0.0.0/8' } });
    assert.match(printed.stdout, /^workers += 3 {2}# from config file$/m);
    assert.match(printed.stdout, /^forwarded_allow_ips += "10\.0\.0\.0\/8" {2}# from environment \(FORWARDED_ALLOW_IPS\)$/m);
    const bad = await runCli(['-b', '127.0.0.1:0', fixture('identify.js')], { env: { WEB_CONCURRENCY: 'lots' } });
    assert.equal(bad.status, 3);
    assert.equal(bad.stderr.trim(), "grainbows: WEB_CONCURRENCY: --workers must be a whole number ≥ 1, not 'lots'");
  });

  it("--log-file - sends the error log to stdout (the original grainbows meaning); --error-logfile - to stderr (gunicorn's)", async () => {
    for (const [flag, stream] of [
      ['--log-file', 'stdout'],
      ['--error-logfile', 'stderr'],
    ] as const) {
      const child = spawn(process.execPath, [CLI, '-b', '127.0.0.1:0', flag, '-', fixture('identify.js')], { stdio: ['ignore', 'pipe', 'pipe'] });
      const output = { stdout: '', stderr: '' };
      child.stdout.on('data', (chunk) => (output.stdout += chunk));
      child.stderr.on('data', (chunk) => (output.stderr += chunk));
      await until(() => /Listening at: /.test(output.stdout + output.stderr), 'Listening at', 15_000).catch(() => {});
      child.kill('SIGTERM');
      await new Promise((resolve) => child.on('close', resolve));
      const other = stream === 'stdout' ? 'stderr' : 'stdout';
      assert.match(output[stream], /\[INFO\] Listening at: http/, `${flag} - writes to ${stream}`);
      assert.equal(output[other], '', `and nothing to ${other}`);
    }
  });

  it('--use sync serves one request per actor at a time and closes each connection after its response', async () => {
    const cli = await startCli(['-b', '127.0.0.1:0', '-w', '1', '--use', 'sync', fixture('identify.js')]);
    try {
      const port = Number(new URL(cli.url).port);
      const results = await Promise.all(Array.from({ length: 3 }, () => exchange(port, 'GET /?sleep=200 HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 5000 })));
      for (const result of results) {
        assert.equal(result.responses[0]?.status, 200);
        assert.equal(result.responses[0].headers.connection, 'close');
        assert.ok(result.closed);
      }
      const peak = JSON.parse((await exchange(port, 'GET /peak HTTP/1.1\r\nHost: x\r\n\r\n', { responses: 1 })).responses[0].body.toString()) as {
        peak: number;
      };
      assert.equal(peak.peak, 1);
    } finally {
      await cli.stop();
    }
  });

  it('--check-config exits 0 when the settings and the app are good', async () => {
    const result = await runCli(['--check-config', 'examples/hello.js']);
    assert.equal(result.status, 0, result.stderr);
    assert.match(result.stdout, /OK: settings are valid and examples\/hello\.js loads as a listener app/);
  });

  const bad: Array<{ name: string; config?: string; args?: string[]; env?: Record<string, string>; message: RegExp }> = [
    {
      name: 'a config file with a syntax error',
      config: 'export const workers = ;\n',
      message: /config file .*grainbows\.config\.js \(.*grainbows\.config\.js:1\) failed to load: SyntaxError/,
    },
    { name: 'a config file that throws', config: "throw new Error('no secrets here');\n", message: /config file .* failed to load: Error: no secrets here/ },
    { name: 'an unknown setting', config: 'export const wokers = 2;\n', message: /unknown setting 'wokers'/ },
    { name: 'a bad value', config: "export const workers = 'many';\n", message: /workers must be a whole number ≥ 1, not 'many'/ },
    { name: 'a hook that is not a function', config: 'export const onStarting = 5;\n', message: /hook 'onStarting' must be a function/ },
    { name: 'a misspelt hook', config: 'export function onStartin() {}\n', message: /unknown hook 'onStartin' \(hooks: onStarting, /i },
    { name: 'a config file that does not exist', args: ['-c', 'missing.config.js'], message: /config file not found: missing\.config\.js/ },
    { name: 'an unknown flag in GRAINBOWS_CMD_ARGS', env: { GRAINBOWS_CMD_ARGS: '--wrokers 2' }, message: /unknown flag --wrokers \(in GRAINBOWS_CMD_ARGS\)/ },
  ];
  for (const testCase of bad) {
    it(`refuses ${testCase.name}: status 3 when serving, 1 with --check-config`, async () => {
      const cwd = testCase.config ? dirWithConfig(testCase.config) : ROOT;
      const app = path.join(ROOT, 'examples/hello.js');
      for (const [extra, status] of [
        [[], 3],
        [['--check-config'], 1],
      ] as const) {
        const result = await runCli([...extra, ...(testCase.args ?? []), '-b', '127.0.0.1:0', app], { cwd, env: testCase.env });
        assert.equal(result.status, status, result.stderr);
        const lines = result.stderr.trim().split('\n');
        assert.equal(lines.length, 1, result.stderr);
        assert.match(lines[0], testCase.message);
      }
    });
  }
});
