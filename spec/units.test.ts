/**
 * Without servers: the app-spec split, bind parsing, and the arbiter's Windows signal table.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitAppSpec } from '../source/app-spec.js';
import { parseBind } from '../source/bind.js';
import { Arbiter } from '../source/arbiter.js';
import { createLogger } from '../source/log.js';
import type { GrainbowsServer } from '../source/server.js';

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

describe('the arbiter on Windows', () => {
  // Windows has no HUP/TTIN/TTOU/USR1/USR2: Node reports a closing console as SIGHUP, and it must stop the
  // server, never reload it; Ctrl+Break (SIGBREAK) stops it gracefully too. The signals are emitted here
  // on this process, with a stand-in server that records what the arbiter asks of it.
  for (const signal of ['SIGHUP', 'SIGBREAK'] as const) {
    it(`${signal} stops gracefully and never reloads`, async () => {
      const before = new Set(process.listeners(signal));
      const asked: string[] = [];
      let exited: number | undefined;
      const arbiter = new Arbiter({
        platform: 'win32',
        log: createLogger('error', () => {}),
        rereadConfig: async () => {
          asked.push('reread config');
          return {};
        },
        onExit: (status) => {
          exited = status;
        },
      });
      const standIn = {
        close: async (options: { graceful: boolean }) => void asked.push(`close graceful=${options.graceful}`),
        reload: async () => void asked.push('reload'),
      } as unknown as GrainbowsServer;
      try {
        arbiter.listen();
        arbiter.serve(standIn);
        process.emit(signal as NodeJS.Signals);
        for (let i = 0; i < 50 && exited === undefined; i++) await new Promise((resolve) => setTimeout(resolve, 10));
        assert.deepEqual(asked, ['close graceful=true']);
        assert.equal(exited, 0);
      } finally {
        for (const listener of process.listeners(signal)) if (!before.has(listener)) process.off(signal, listener);
      }
    });
  }
});
