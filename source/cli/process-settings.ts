/**
 * The process settings (gunicorn's): working directory, environment, umask, title, pidfile, privileges,
 * daemon. Applied by the CLI in gunicorn's order: refuse what the platform cannot do, chdir, env, umask,
 * title; bind; drop privileges; load the app; write the pidfile once serving.
 */
import { spawn } from 'node:child_process';
import { chownSync, existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { GrainbowsError } from '../../shared/errors.js';
import type { SettingSource } from '../config/config.js';
import type { SettingName, SettingsValues } from '../config/settings.js';

/** The POSIX-only settings and what to use on Windows instead. */
const WINDOWS_ALTERNATIVES: Partial<Record<SettingName, string>> = {
  daemon: '--daemon is POSIX only: on Windows run grainbows as a service (e.g. with NSSM or sc.exe create) or with start /b',
  user: '--user is POSIX only: on Windows run the service under the account you want (sc.exe config NAME obj= ACCOUNT)',
  group: '--group is POSIX only: on Windows grant the service account the rights instead',
  umask: '--umask is POSIX only: on Windows set permissions with ACLs (icacls) on the directories grainbows writes to',
};

/** One clear line for a POSIX-only setting on Windows, before anything starts. */
export function refuseUnsupported(sources: Record<SettingName, SettingSource>, platform: NodeJS.Platform = process.platform): void {
  if (platform !== 'win32') return;
  for (const [name, message] of Object.entries(WINDOWS_ALTERNATIVES) as Array<[SettingName, string]>) {
    if (sources[name] !== 'default') throw new GrainbowsError('E_USAGE', message);
  }
}

/** chdir, env, umask and title: everything that must hold before the app is resolved and loaded. */
export function applyProcessSettings(settings: SettingsValues, sources: Record<SettingName, SettingSource>): void {
  if (settings.chdir) {
    try {
      process.chdir(settings.chdir);
    } catch (error) {
      throw new GrainbowsError('E_USAGE', `--chdir ${settings.chdir}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
    }
  }
  for (const assignment of settings.rawEnv) {
    const equals = assignment.indexOf('=');
    process.env[assignment.slice(0, equals)] = assignment.slice(equals + 1);
  }
  if (sources.umask !== 'default' && process.platform !== 'win32') process.umask(settings.umask);
  process.title = settings.procName ? `grainbows: ${settings.procName}` : 'grainbows';
}

/**
 * Gives the unix sockets this process bound (as root) to the user and group it is about to run as, as
 * gunicorn does: a binary upgrade keeps a socket's path by hard-linking it, which fs.protected_hardlinks
 * refuses on a file another user owns. The ids come from the names by switching the effective ids for a
 * moment, so that whatever resolves users (files, LDAP) resolves them as setuid() will.
 */
export function chownToRunAs(paths: readonly string[], user: string, group: string): void {
  if (paths.length === 0 || (!user && !group) || process.getuid?.() !== 0) return;
  const asId = (value: string) => (/^\d+$/.test(value) ? Number(value) : value);
  let uid = -1;
  let gid = -1;
  try {
    if (group) {
      process.setegid!(asId(group));
      gid = process.getegid!();
      process.setegid!(0);
    }
    if (user) {
      process.seteuid!(asId(user));
      uid = process.geteuid!();
      process.seteuid!(0);
    }
  } catch (error) {
    throw new GrainbowsError('E_USAGE', `cannot switch to user '${user || '-'}' group '${group || '-'}': ${(error as Error).message}`);
  }
  for (const socketPath of paths) chownSync(socketPath, uid, gid);
}

/** --group then --user (the group change needs the privileges the user change gives up). */
export function dropPrivileges(user: string, group: string): void {
  if (!user && !group) return;
  if (typeof process.setuid !== 'function' || typeof process.setgid !== 'function') {
    throw new GrainbowsError('E_USAGE', '--user and --group are POSIX only');
  }
  const asId = (value: string) => (/^\d+$/.test(value) ? Number(value) : value);
  try {
    if (group) process.setgid(asId(group));
    if (user) {
      // Leave root's supplementary groups behind too, keeping only the group we run as.
      if (process.getuid?.() === 0) process.setgroups?.([process.getgid!()]);
      process.setuid(asId(user));
    }
  } catch (error) {
    throw new GrainbowsError('E_USAGE', `cannot switch to user '${user || '-'}' group '${group || '-'}': ${(error as Error).message}`);
  }
}

/** Refuses a pidfile that names a live process (a second server on the same pidfile is a mistake). */
export function checkPidfile(file: string): void {
  if (!file || !existsSync(file)) return;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0 || pid === process.pid) return;
  try {
    process.kill(pid, 0);
  } catch {
    return; // stale: that process is gone
  }
  throw new GrainbowsError('E_USAGE', `pidfile ${file} names pid ${pid}, which is running: already serving?`);
}

export function writePidfile(file: string): void {
  if (file) writeFileSync(path.resolve(file), `${process.pid}\n`);
}

/**
 * Removes the pidfile if it still holds our pid. Best effort: after `-u` drops privileges the file may be
 * in a directory only root can write (as with gunicorn, it stays; the next start sees a stale pid).
 */
export function removePidfile(file: string): void {
  try {
    if (!file || !existsSync(file)) return;
    if (readFileSync(file, 'utf8').trim() === String(process.pid)) rmSync(file, { force: true });
  } catch {
    // left in place: checkPidfile() treats a pid that is not running as stale
  }
}

/** Set in the daemon's environment, so it does not detach again. */
const DAEMON_CHILD = 'GRAINBOWS_DAEMON_CHILD';

export function isDaemonChild(): boolean {
  return process.env[DAEMON_CHILD] === '1';
}

/** Messages from a daemon to the process that started it. */
export type DaemonMessage = { kind: 'ready' } | { kind: 'failed'; message: string; status: number };

/**
 * --daemon: Node cannot fork, so the same command starts again as a detached child in its own session,
 * without a terminal, and this process waits for it to report serving (then exits 0) or failing (then
 * prints its one line and exits with its status). The daemon binds its own listeners.
 */
export function daemonize(argv: string[]): Promise<number> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [...process.execArgv, ...argv], {
      detached: true,
      stdio: ['ignore', 'ignore', 'ignore', 'ipc'],
      env: { ...process.env, [DAEMON_CHILD]: '1' },
    });
    child.on('message', (message: DaemonMessage) => {
      if (message.kind === 'ready') {
        child.disconnect();
        child.unref();
        resolve(0);
      } else {
        process.stderr.write(`grainbows: ${message.message}\n`);
        resolve(message.status);
      }
    });
    child.on('exit', (status) => resolve(status ?? 1));
  });
}

/** In the daemon: tell the starting process how start-up went. */
export function reportToStarter(message: DaemonMessage): void {
  // The starter is the --daemon parent, or the old process of a binary upgrade (binary-upgrade.ts).
  if (!(isDaemonChild() || process.env.GRAINBOWS_UPGRADE_FROM) || !process.send || !process.connected) return;
  process.send(message);
  if (message.kind === 'ready') process.disconnect();
}
