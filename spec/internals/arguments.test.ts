/**
 * Without a server: GRAINBOWS_CMD_ARGS split into words (source/config/arguments.ts), as gunicorn splits
 * GUNICORN_CMD_ARGS with shlex.split, and meow's readings carried to the process started in the CLI's
 * place. spec/config.test.ts passes the same through the command.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { adoptCarriedReadings, carriedReadings, parseArguments, splitWords } from '../../source/config/arguments.js';
import { GrainbowsError } from '../../shared/errors.js';

describe('GRAINBOWS_CMD_ARGS words', () => {
  it('splits on any run of whitespace', () => assert.deepEqual(splitWords('  -w 4\t--bind\n127.0.0.1:9000  '), ['-w', '4', '--bind', '127.0.0.1:9000']));
  it('keeps quoted spaces, single and double, and joins quoted and bare parts of one word', () => {
    assert.deepEqual(splitWords(`--access-logformat '%(h)s "%(r)s"' --name "my app" a'b c'd`), [
      '--access-logformat',
      '%(h)s "%(r)s"',
      '--name',
      'my app',
      'ab cd',
    ]);
  });
  it('takes a backslash outside quotes and inside double quotes as escaping the next character, not in single quotes', () => {
    assert.deepEqual(splitWords(String.raw`a\ b "c\"d" 'e\f'`), ['a b', 'c"d', String.raw`e\f`]);
  });
  it('an empty quoted word is a word', () => assert.deepEqual(splitWords(`--statsd-prefix '' -w 2`), ['--statsd-prefix', '', '-w', '2']));
  it('expands nothing and knows no operators: $, >, |, ; and * stay as written', () => {
    assert.deepEqual(splitWords(`--access-logformat '%(h)s > $x' a|b c;d *.js`), ['--access-logformat', '%(h)s > $x', 'a|b', 'c;d', '*.js']);
  });
  it('refuses an unbalanced quote with E_CONFIG', () => {
    assert.throws(
      () => splitWords(`--name 'oops`),
      (error: unknown) => error instanceof GrainbowsError && error.code === 'E_CONFIG' && /unbalanced ' in GRAINBOWS_CMD_ARGS/.test(error.message),
    );
  });
});

describe("meow's readings carried across a relaunch", () => {
  const CARRIED = 'GRAINBOWS_READ_ARGUMENTS';

  it('a reading carried from this pid (execve) is used as it is, without reading the words again; the variable is removed', async () => {
    const words = ['-w', '3', 'app.js'];
    // What meow could never make of these words: proof that the carried reading, not meow, answered.
    const reading = { flags: { workers: '7' }, input: ['carried.js'] };
    const env: NodeJS.ProcessEnv = { [CARRIED]: JSON.stringify({ from: process.pid, readings: [[JSON.stringify(['command line', words]), reading]] }) };
    adoptCarriedReadings(env);
    assert.equal(env[CARRIED], undefined, 'nothing this process starts sees it');
    const parsed = await parseArguments(words, 'command line', import.meta);
    assert.equal(parsed.values.workers, 7);
    assert.deepEqual(parsed.input, ['carried.js']);
  });

  it('a reading from another process (not this pid, not its parent) is ignored, and so is an unreadable one', async () => {
    const words = ['-w', '5', 'other.js'];
    const reading = { flags: { workers: '9' }, input: ['foreign.js'] };
    adoptCarriedReadings({ [CARRIED]: JSON.stringify({ from: process.pid + 100_000, readings: [[JSON.stringify(['command line', words]), reading]] }) });
    adoptCarriedReadings({ [CARRIED]: '{not json' });
    const parsed = await parseArguments(words, 'command line', import.meta);
    assert.equal(parsed.values.workers, 5, 'read by meow');
    assert.deepEqual(parsed.input, ['other.js']);
  });

  it('carriedReadings holds what this process read, keyed by where the words came from', async () => {
    await parseArguments(['--name', 'carried'], 'GRAINBOWS_CMD_ARGS', import.meta);
    const carried = JSON.parse(carriedReadings()[CARRIED]) as { from: number; readings: [string, { flags: Record<string, unknown> }][] };
    assert.equal(carried.from, process.pid);
    const entry = carried.readings.find(([key]) => key === JSON.stringify(['GRAINBOWS_CMD_ARGS', ['--name', 'carried']]));
    assert.equal(entry?.[1].flags.name, 'carried');
  });
});
