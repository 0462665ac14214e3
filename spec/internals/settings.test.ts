/**
 * Without a server: the settings table (source/config/settings.ts) that drives the command line, the
 * config file, serve() and docs/settings.md. Its own consistency, each kind of value parser, and serve()'s
 * validation. spec/config.test.ts runs the same rows through the command and config files.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { GrainbowsError } from '../../shared/errors.js';
import {
  SERVE_SETTINGS,
  SETTINGS,
  configKey,
  defaultSettings,
  findSetting,
  parseSettingValue,
  resolveServeSettings,
  type SettingRow,
} from '../../source/config/settings.js';

const rows = SETTINGS as ReadonlyArray<SettingRow>;
const row = (name: string): SettingRow => {
  const found = findSetting(name);
  assert.ok(found, name);
  return found;
};
const parse = (name: string, value: unknown) => parseSettingValue(row(name), value);
const refusal = (name: string, value: unknown): string => {
  try {
    parse(name, value);
  } catch (error) {
    return (error as Error).message;
  }
  assert.fail(`${name} = ${JSON.stringify(value)} was accepted`);
};

describe('the settings table', () => {
  it('no two rows share a name, a flag, an alias or a short flag', () => {
    const spellings = rows.flatMap((r) => [`--${r.flag}`, ...(r.aliases ?? []).map((alias) => `--${alias}`), ...(r.short ? [`-${r.short}`] : [])]);
    assert.deepEqual(
      spellings.filter((spelling, index) => spellings.indexOf(spelling) !== index),
      [],
    );
    const names = rows.map((r) => r.name);
    assert.equal(new Set(names).size, names.length);
  });
  it('every default is a value its own parser accepts, or the "off" value it stands for', () => {
    for (const r of rows) {
      if (r.default === undefined || r.default === null || (Array.isArray(r.default) && r.default.length === 0)) continue;
      if (r.name === 'bind' || r.default === '') continue;
      assert.deepEqual(parseSettingValue(r, r.default), r.default, r.name);
    }
  });
  it('every setting serve() takes is a row; defaultSettings() gives each row its default, lists copied', () => {
    for (const name of SERVE_SETTINGS) assert.ok(findSetting(name), name);
    const first = defaultSettings();
    const second = defaultSettings();
    assert.equal(first.workers, row('workers').default);
    assert.notEqual(first.bind, second.bind, 'a list default is a fresh copy each time');
  });
  it('a config file spells a setting in snake_case, gunicorn’s way, and after an alias too', () => {
    assert.equal(configKey('workerConnections'), 'worker_connections');
    assert.equal(findSetting('worker_connections')?.name, 'workerConnections');
    assert.equal(findSetting('dirty_timeout')?.name, 'taskTimeout');
    assert.equal(findSetting('dirty_workers')?.name, 'taskThreads');
    assert.equal(findSetting('wokers'), undefined);
  });
});

describe('value parsers', () => {
  it('whole numbers, with their minimum and range', () => {
    assert.equal(parse('workers', '4'), 4);
    assert.equal(parse('workers', 4), 4);
    assert.equal(refusal('workers', '0'), "--workers must be a whole number ≥ 1, not '0'");
    assert.equal(refusal('workers', '2.5'), "--workers must be a whole number ≥ 1, not '2.5'");
    assert.equal(refusal('workers', 'abc'), "--workers must be a whole number ≥ 1, not 'abc'");
    assert.equal(parse('taskNice', '19'), 19);
    assert.match(refusal('taskNice', '20'), /from 0 to 19/);
  });
  it('one of a set of words', () => {
    assert.equal(parse('headerMap', 'refuse'), 'refuse');
    assert.match(refusal('headerMap', 'keep'), /must be one of drop, refuse, dangerous/);
  });
  it('switches, from a flag or a config file', () => {
    assert.equal(parse('stickySessions', ''), true);
    assert.equal(parse('stickySessions', 'true'), true);
    assert.equal(parse('stickySessions', false), false);
    assert.match(refusal('stickySessions', 'yes'), /is a switch \(true or false\)/);
  });
  it('peer lists and addresses', () => {
    assert.equal(parse('forwardedAllowIps', '127.0.0.1, 10.0.0.0/8'), '127.0.0.1, 10.0.0.0/8');
    assert.match(refusal('forwardedAllowIps', 'localhost'), /'localhost' is not an IP address or network/);
    assert.equal(parse('metricsBind', '127.0.0.1:9100'), '127.0.0.1:9100');
    assert.equal(parse('metricsBind', ''), '');
  });
  it('a protocol list, each protocol once', () => {
    assert.equal(parse('httpProtocols', 'h2, h1'), 'h2,h1');
    assert.match(refusal('httpProtocols', 'h1,h1'), /names a protocol twice/);
    assert.match(refusal('httpProtocols', 'h3'), /takes h1, h2/);
  });
  it('repeatable settings take one value or a list; single ones refuse a list', () => {
    assert.deepEqual(parse('tasks', 'work.js:2'), ['work.js:2']);
    assert.deepEqual(parse('tasks', ['a.js', 'b.js:1']), ['a.js', 'b.js:1']);
    assert.match(refusal('tasks', 'work.js:0'), /needs at least 1 thread/);
    assert.match(refusal('tasks', ':2'), /takes MODULE\[:THREADS\]/);
    assert.match(refusal('workers', [1, 2]), /takes one value, not a list/);
  });
  it('umask in octal or decimal, and KEY=VALUE assignments', () => {
    for (const text of ['0o22', '022', '18']) assert.equal(parse('umask', text), 0o22, text);
    assert.match(refusal('umask', '0o1000'), /must be a mode like/);
    assert.deepEqual(parse('rawEnv', 'A=1'), ['A=1']);
    assert.match(refusal('rawEnv', '1A=1'), /must be KEY=VALUE/);
  });
});

describe('serve() options', () => {
  it('take the table’s defaults, with the library’s own where it differs from the command', () => {
    const settings = resolveServeSettings({});
    assert.equal(settings.workers, row('workers').default);
    assert.equal(settings.memoryReducer, true);
    assert.equal(settings.heapGrowingPercent, 0);
  });
  it('refuse a bad value with E_USAGE, naming the option as the library spells it', () => {
    assert.throws(
      () => resolveServeSettings({ workerConnections: 0 }),
      (error: unknown) =>
        error instanceof GrainbowsError && error.code === 'E_USAGE' && error.message === "workerConnections must be a whole number ≥ 1, not '0'",
    );
  });
  it('refuse a body timeout shorter than the header timeout', () => {
    assert.throws(
      () => resolveServeSettings({ headerTimeout: 30, bodyTimeout: 10 }),
      /body timeout \(10 s\) must be at least the header timeout \(30 s\), or 0/,
    );
    assert.equal(resolveServeSettings({ headerTimeout: 30, bodyTimeout: 0 }).bodyTimeout, 0);
  });
});
