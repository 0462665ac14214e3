/**
 * Pure functions, without servers: the app-spec split and bind parsing.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitAppSpec } from '../source/app-spec.js';
import { parseBind } from '../source/bind.js';

describe('MODULE[:EXPORT]', () => {
  const cases: Array<[string, string, string]> = [
    ['app.js', 'app.js', 'default'],
    ['app.js:handler', 'app.js', 'handler'],
    ['./srv/app.mjs:$app_1', './srv/app.mjs', '$app_1'],
    ['C:\\srv\\app.js', 'C:\\srv\\app.js', 'default'],
    ['C:\\srv\\app.js:app', 'C:\\srv\\app.js', 'app'],
    ['C:/srv/app.js:app', 'C:/srv/app.js', 'app'],
    ['C:app', 'C:app', 'default'], // a bare drive letter is never split off
    ['app.js:not-an-identifier', 'app.js:not-an-identifier', 'default'],
  ];
  for (const [text, modulePath, exportName] of cases) {
    it(`splits ${text}`, () => assert.deepEqual(splitAppSpec(text), { modulePath, exportName }));
  }
});

describe('--bind', () => {
  it('parses every form gunicorn has', () => {
    assert.deepEqual(parseBind('127.0.0.1:8000'), { kind: 'tcp', host: '127.0.0.1', port: 8000 });
    assert.deepEqual(parseBind('localhost'), { kind: 'tcp', host: 'localhost', port: 8000 });
    assert.deepEqual(parseBind('[::1]:0'), { kind: 'tcp', host: '::1', port: 0 });
    assert.deepEqual(parseBind('[::1]'), { kind: 'tcp', host: '::1', port: 8000 });
    assert.deepEqual(parseBind('unix:/run/app.sock'), { kind: 'unix', path: '/run/app.sock' });
    assert.deepEqual(parseBind('fd://3'), { kind: 'fd', fd: 3 });
  });
  it('refuses what is not a bind address', () => {
    for (const bad of ['', 'a b', '::1:80', '[nope]:80', 'host:port', 'host:70000', 'unix:', 'fd://x']) {
      assert.throws(() => parseBind(bad), { code: 'E_BIND' }, bad);
    }
  });
});
