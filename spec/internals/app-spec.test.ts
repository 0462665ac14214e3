/**
 * Without a server: the app argument, `MODULE[:EXPORT]`, split (shared/app-spec.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitAppSpec } from '../../shared/app-spec.js';

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
