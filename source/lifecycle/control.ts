/**
 * The control channel: a local socket on which `grainbows ctl` (or anything that speaks one JSON object per
 * line) asks the running server for its status or tells it to reload, resize or stop. It is the path that
 * works where signals do not (Windows), and it answers, which a signal cannot.
 *
 * Where: a unix socket `<tmpdir>/grainbows-<uid>/<pid>.sock` in a directory only its owner can enter
 * (POSIX), or the named pipe `\\.\pipe\grainbows-<pid>` (Windows); `--control-socket PATH` overrides both.
 * Protocol: the client writes `{"command":"status"}` (or reload, `{"command":"resize","count":3}`, stop)
 * and a newline; the server answers `{"ok":true,"result":…}` or `{"ok":false,"error":"…"}` and a newline.
 */
import { chmodSync, existsSync, mkdirSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import type { Command } from './arbiter.js';
import type { ServerStats } from './server-stats.js';
import type { Logger } from '../../shared/log.js';

export const CONTROL_COMMANDS = ['status', 'reload', 'resize', 'stop', 'upgrade'] as const;
export type ControlCommand = (typeof CONTROL_COMMANDS)[number];

export interface ControlRequest {
  command: ControlCommand;
  count?: number;
}

export type ControlAnswer = { ok: true; result: unknown } | { ok: false; error: string };

export interface StatusReport extends ServerStats {
  pid: number;
  workers: number;
  uptime: number;
}

/** The control socket of the grainbows process `pid` on this platform. */
export function defaultControlPath(pid: number, platform: NodeJS.Platform = process.platform): string {
  if (platform === 'win32') return `\\\\.\\pipe\\grainbows-${pid}`;
  const uid = typeof process.getuid === 'function' ? process.getuid() : 0;
  return path.join(os.tmpdir(), `grainbows-${uid}`, `${pid}.sock`);
}

/**
 * The control socket of the server `pid`, whoever runs this: the server makes it under its own user's
 * directory, which is not the caller's when the server dropped privileges (`-u nobody`) and root asks.
 * A pid names one process, so the first directory holding `<pid>.sock` is the one.
 */
export function findControlPath(pid: number, platform: NodeJS.Platform = process.platform): string {
  const own = defaultControlPath(pid, platform);
  if (platform === 'win32' || existsSync(own)) return own;
  let directories: string[];
  try {
    directories = readdirSync(os.tmpdir()).filter((name) => /^grainbows-\d+$/.test(name));
  } catch {
    return own;
  }
  for (const directory of directories) {
    const candidate = path.join(os.tmpdir(), directory, `${pid}.sock`);
    if (existsSync(candidate)) return candidate;
  }
  return own;
}

export interface ControlTarget {
  status(): Promise<StatusReport>;
  run(command: Command, argument?: number): Promise<void>;
}

export class ControlServer {
  private constructor(
    private readonly server: net.Server,
    readonly path: string,
  ) {}

  static async open(socketPath: string, target: ControlTarget, log: Logger): Promise<ControlServer> {
    const windowsPipe = socketPath.startsWith('\\\\.\\pipe\\');
    if (!windowsPipe) {
      // Owner-only: the directory keeps others from reaching the socket even before its own mode is set.
      mkdirSync(path.dirname(socketPath), { recursive: true, mode: 0o700 });
      chmodSync(path.dirname(socketPath), 0o700);
      rmSync(socketPath, { force: true });
    }
    const server = net.createServer((socket) => serveClient(socket, target, log));
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(socketPath, () => {
        server.off('error', reject);
        resolve();
      });
    });
    if (!windowsPipe) chmodSync(socketPath, 0o600);
    return new ControlServer(server, socketPath);
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

function serveClient(socket: net.Socket, target: ControlTarget, log: Logger): void {
  let buffered = '';
  socket.setEncoding('utf8');
  socket.on('error', () => {});
  socket.on('data', (chunk: string) => {
    buffered += chunk;
    if (buffered.length > 64 * 1024) socket.destroy();
    const newline = buffered.indexOf('\n');
    if (newline < 0) return;
    const line = buffered.slice(0, newline);
    buffered = '';
    socket.pause();
    void answer(line, target, log).then((reply) => socket.end(`${JSON.stringify(reply)}\n`));
  });
}

async function answer(line: string, target: ControlTarget, log: Logger): Promise<ControlAnswer> {
  let request: ControlRequest;
  try {
    request = JSON.parse(line) as ControlRequest;
  } catch {
    return { ok: false, error: 'not JSON: send one {"command": …} object per line' };
  }
  log.info(`Control channel: ${request.command}${request.count === undefined ? '' : ` ${request.count}`}`);
  try {
    switch (request.command) {
      case 'status':
        return { ok: true, result: await target.status() };
      case 'reload':
        await target.run('reload');
        return { ok: true, result: await target.status() };
      case 'resize':
        if (!Number.isInteger(request.count) || (request.count ?? 0) < 1) return { ok: false, error: 'resize needs a whole number of actors ≥ 1' };
        await target.run('resize', request.count);
        return { ok: true, result: await target.status() };
      case 'stop':
        // Answer first: the stop ends this process, and with it this connection.
        setImmediate(() => void target.run('stop').catch(() => {}));
        return { ok: true, result: 'stopping' };
      case 'upgrade':
        // Resolves once the new process serves; this one then drains and exits.
        await target.run('upgrade');
        return { ok: true, result: 'upgraded: the new process is serving, this one is stopping' };
      default:
        return { ok: false, error: `unknown command '${String(request.command)}' (${CONTROL_COMMANDS.join(', ')})` };
    }
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}
