/**
 * A real nginx (Debian's) for tests, in the foreground, with its config, logs and temp files in a
 * directory of the test's own.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { once } from 'node:events';
import net from 'node:net';
import path from 'node:path';
import { until } from './wait.js';

export const NGINX = '/usr/sbin/nginx';

/** Outside CI a missing nginx skips the test; in CI (CI=true) it is a failure, so it cannot hide. */
export function nginxSkipReason(): string | false {
  if (existsSync(NGINX) || process.env.CI) return false;
  return `no nginx at ${NGINX} (apt-get install nginx)`;
}

/** A TCP port free on 127.0.0.1 now. */
export async function freePort(): Promise<number> {
  const probe = net.createServer().listen(0, '127.0.0.1');
  await once(probe, 'listening');
  const { port } = probe.address() as net.AddressInfo;
  await new Promise((resolve) => probe.close(resolve));
  return port;
}

/** Resolves once something accepts connections on 127.0.0.1:`port`. */
export async function accepting(port: number): Promise<void> {
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
    `127.0.0.1:${port} accepting`,
  );
}

export interface RunningNginx {
  port: number;
  process: ChildProcess;
  /** Stops it gracefully (QUIT) and waits for its end. */
  stop(): Promise<void>;
}

/**
 * Starts nginx listening on a free port of 127.0.0.1, with `upstreams` (upstream blocks, maps) and `location`
 * (the body of `location /`) in its http block.
 */
export async function startNginx(dir: string, { upstreams, location }: { upstreams: string; location: string }): Promise<RunningNginx> {
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
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/body; proxy_temp_path ${dir}/proxy; fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi; scgi_temp_path ${dir}/scgi;
${upstreams}
  server {
    listen 127.0.0.1:${port};
    location / {
${location}
    }
  }
}
`,
  );
  const check = spawnSync(NGINX, ['-t', '-c', config], { encoding: 'utf8' });
  assert.equal(check.status, 0, check.stderr);
  const child = spawn(NGINX, ['-c', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  await accepting(port);
  return {
    port,
    process: child,
    async stop() {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill('SIGQUIT');
      await once(child, 'exit');
    },
  };
}
