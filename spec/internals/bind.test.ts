/**
 * Without a server: `--bind` addresses parsed, and listeners named as the log names them (source/accept/bind.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeListener, parseBind, unixPathOf } from '../../source/accept/bind.js';
import net from 'node:net';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

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

describe('listeners as the log names them', () => {
  it(
    'a unix socket opened from a descriptor (systemd, a binary upgrade) by its path, not fd://N',
    { skip: process.platform !== 'linux' && '/proc/net/unix is Linux only' },
    async () => {
      const socketPath = path.join(mkdtempSync(path.join(tmpdir(), 'grainbows-bind-')), 'app.sock');
      const bound = net.createServer();
      await new Promise<void>((resolve) => bound.listen(socketPath, resolve));
      const fd = (bound as unknown as { _handle: { fd: number } })._handle.fd;
      try {
        assert.equal(unixPathOf(fd), socketPath);
        // What Node reports for a server opened on such a descriptor: no address, only its handle's descriptor.
        const fromDescriptor = { address: () => null, _handle: { fd } } as unknown as net.Server;
        assert.equal(describeListener(fromDescriptor, { kind: 'fd', fd }), `unix:${socketPath}`);
        assert.equal(describeListener(fromDescriptor, { kind: 'handle', was: 'unix:/elsewhere', inherited: undefined as never }), `unix:${socketPath}`);
        const unknown = { address: () => null, _handle: { fd: -1 } } as unknown as net.Server;
        assert.equal(describeListener(unknown, { kind: 'fd', fd: 7 }), 'fd://7');
      } finally {
        bound.close();
      }
    },
  );
});
