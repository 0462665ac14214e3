/**
 * Behind a real nginx (Debian's), as deployed: nginx's workers run as another user (nobody) and proxy HTTP
 * and WebSockets to a unix-socket bind. The socket must be usable by that user without any setting
 * (gunicorn's mode, from --umask 0), and the forwarded headers of a unix-socket peer reach the app.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, statSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import WebSocket from 'ws';
import { fixture, startCli, strategies } from './helpers/servers.js';
import { until } from './helpers/wait.js';

const NGINX = '/usr/sbin/nginx';

/** Outside CI a missing nginx skips the test; in CI (CI=true) it is a failure, so it cannot hide. */
function nginxSkipReason(): string | false {
  if (existsSync(NGINX) || process.env.CI) return false;
  return `no nginx at ${NGINX} (apt-get install nginx)`;
}

async function freePort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Starts nginx in the foreground with its own config, logs and temp files in `dir`. */
async function startNginx(dir: string, socketPath: string): Promise<{ port: number; process: ChildProcess }> {
  const port = await freePort();
  const config = path.join(dir, 'nginx.conf');
  // As root, the workers run as nobody: another user than grainbows, as www-data would be.
  const user = process.getuid?.() === 0 ? 'user nobody nogroup;' : '';
  writeFileSync(
    config,
    `${user}
daemon off;
master_process on;
worker_processes 1;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 64; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
  upstream app { server unix:${socketPath}; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection $http_connection;
      proxy_set_header X-Forwarded-For $remote_addr;
      proxy_set_header X-Forwarded-Proto $scheme;
    }
  }
}
`,
  );
  const check = spawnSync(NGINX, ['-t', '-c', config], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  const child = spawn(NGINX, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  await until(
    () =>
      new Promise<boolean>((resolve) => {
        const socket = net.connect(port, '127.0.0.1');
        socket.once('connect', () => {
          socket.destroy();
          resolve(true);
        });
        socket.once('error', () => resolve(false));
      }),
    'nginx listening',
  );
  return { port, process: child };
}

describe('behind nginx, through a unix socket', { skip: nginxSkipReason() }, () => {
  for (const handoff of ['relay', 'transfer'] as const) {
    it(`nginx's workers (another user) reach the socket; HTTP, forwarded headers and a WebSocket pass (${handoff})`, async (t) => {
      if (!(await strategies()).includes(handoff)) return t.skip(`no ${handoff} hand-off on this runtime`);
      const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-nginx-'));
      chmodSync(dir, 0o755); // nobody must reach the socket inside
      const socketPath = path.join(dir, 'app.sock');
      const cli = await startCli(['-b', `unix:${socketPath}`, '-w', '2', '--handoff', handoff, fixture('forwarded-echo.js')]);
      let nginx: ChildProcess | undefined;
      try {
        assert.equal(statSync(socketPath).mode & 0o777, 0o777, 'the socket is created 0777 (--umask 0)');
        const started = await startNginx(dir, socketPath);
        nginx = started.process;
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
        nginx?.kill('SIGQUIT');
        if (nginx) await once(nginx, 'exit');
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
      let nginx: ChildProcess | undefined;
      try {
        assert.equal(statSync(socketPath).mode & 0o777, 0o770);
        const started = await startNginx(dir, socketPath);
        nginx = started.process;
        const response = await fetch(`http://127.0.0.1:${started.port}/`);
        await response.text();
        assert.equal(response.status, 502);
      } finally {
        nginx?.kill('SIGQUIT');
        if (nginx) await once(nginx, 'exit');
        await cli.stop();
      }
    },
  );
});
