/**
 * Without a server: GRAINBOWS_CMD_ARGS split into words (source/config/arguments.ts), as gunicorn splits
 * GUNICORN_CMD_ARGS with shlex.split. spec/config.test.ts passes the same through the command.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitWords } from '../../source/config/arguments.js';
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
