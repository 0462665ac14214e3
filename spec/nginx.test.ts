/**
 * Behind a real nginx (Debian's), as deployed: nginx's workers run as another user (nobody) and proxy HTTP
 * and WebSockets to a unix-socket bind. The socket must be usable by that user without any setting
 * (gunicorn's mode, from --umask 0), and the forwarded headers of a unix-socket peer reach the app.
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, statSync } from 'node:fs';
import { once } from 'node:events';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { fixture, startCli, strategies } from './helpers/servers.js';
import { nginxSkipReason, startNginx, type RunningNginx } from './helpers/nginx.js';

/** The body of nginx's `location /`: docs/operations.md's, to a unix socket. */
const LOCATION = `      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $http_connection;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;`;

const nginxFor = (dir: string, socketPath: string) => startNginx(dir, { upstreams: `  upstream app { server unix:${socketPath}; }`, location: LOCATION });

describe('behind nginx, through a unix socket', { skip: nginxSkipReason() }, () => {
  for (const handoff of ['relay', 'transfer'] as const) {
    it(`nginx's workers (another user) reach the socket; HTTP, forwarded headers and a WebSocket pass (${handoff})`, async (t) => {
      if (!(await strategies()).includes(handoff)) return t.skip(`no ${handoff} hand-off on this runtime`);
      const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-nginx-'));
      chmodSync(dir, 0o755); // nobody must reach the socket inside
      const socketPath = path.join(dir, 'app.sock');
      const cli = await startCli(['-b', `unix:${socketPath}`, '-w', '2', '--handoff', handoff, fixture('forwarded-echo.js')]);
      let nginx: RunningNginx | undefined;
      try {
        assert.equal(statSync(socketPath).mode & 0o777, 0o777, 'the socket is created 0777 (--umask 0)');
        const started = await nginxFor(dir, socketPath);
        nginx = started;
        const response = await fetch(`http://127.0.0.1:${started.port}/`);
        assert.equal(response.status, 200);
        // The unix-socket peer (nginx) is trusted: its X-Forwarded-* headers reach the app.
        assert.deepEqual(await response.json(), { forwardedFor: '127.0.0.1', proto: 'http' });
        const ws = new WebSocket(`ws://127.0.0.1:${started.port}/`);
        await once(ws, 'open');
        ws.send('through nginx');
        const [answer] = (await once(ws, 'message')) as [Buffer];
        assert.equal(String(answer), 'echo: through nginx');
        ws.close();
      } finally {
        await nginx?.stop();
        await cli.stop();
      }
    });
  }

  it(
    '--umask 0o007 keeps other users out: nginx as nobody gets a 502',
    { skip: process.getuid?.() === 0 ? false : 'nginx runs its workers as another user only as root' },
    async () => {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-nginx-'));
      chmodSync(dir, 0o755);
      const socketPath = path.join(dir, 'app.sock');
      const cli = await startCli(['-b', `unix:${socketPath}`, '-w', '1', '--umask', '0o007', fixture('forwarded-echo.js')]);
      let nginx: RunningNginx | undefined;
      try {
        assert.equal(statSync(socketPath).mode & 0o777, 0o770);
        const started = await nginxFor(dir, socketPath);
        nginx = started;
        const response = await fetch(`http://127.0.0.1:${started.port}/`);
        await response.text();
        assert.equal(response.status, 502);
      } finally {
        await nginx?.stop();
        await cli.stop();
      }
    },
  );
});
