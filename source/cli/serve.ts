/**
 * Serving, once the command has its settings and knows it is the process that serves (cli.ts decides
 * that first: a launcher on Node 20 never loads this module, nor the server with it, so it stays small).
 */
import { GrainbowsServer } from '../server.js';
import { parseBind } from '../accept/bind.js';
import { createLogger } from '../../shared/log.js';
import { Arbiter } from '../lifecycle/arbiter.js';
import { ControlServer, defaultControlPath } from '../lifecycle/control.js';
import { callHook } from '../../shared/hooks.js';
import { openLogDestination } from '../log-destination.js';
import { loadTlsMaterial } from '../accept/tls.js';
import type { CodeWatcher } from '../lifecycle/code-watcher.js';
import { promoteWhenPredecessorExits, receiveListeners, startSuccessor, upgradingFrom } from '../lifecycle/binary-upgrade.js';
import { parseAppSpec } from '../../shared/app-spec.js';
import { ServiceNotifier } from '../lifecycle/systemd.js';
import { watchParent } from './parent-watch.js';
import { watchLauncher } from './relaunch.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applyProcessSettings,
  checkPidfile,
  chownToRunAs,
  dropPrivileges,
  refuseUnsupported,
  removePidfile,
  reportToStarter,
  writePidfile,
} from './process-settings.js';
import { splitTaskSpec } from '../tasks/task-modules.js';
import { resolveConfig, type ResolvedConfig } from '../config/config.js';
import { fail } from './fail.js';
import { VERSION } from '../version.js';

/** --reload: the app module's directory and each task module's, the config file and the extra files. */
async function watchCode(config: ResolvedConfig, app: string, onChange: (files: string[]) => void): Promise<CodeWatcher> {
  const appDirectory = path.dirname(fileURLToPath(parseAppSpec(app).url));
  const taskDirectories = config.settings.tasks.map((spec) => path.dirname(path.resolve(splitTaskSpec(spec).modulePath)));
  const roots = [...new Set([appDirectory, ...taskDirectories])];
  const extraFiles = [...config.settings.reloadExtraFile, ...(config.configFile ? [config.configFile] : [])];
  // chokidar is loaded only with --reload.
  const { CodeWatcher } = await import('../lifecycle/code-watcher.js');
  return CodeWatcher.start({ roots, extraFiles, onChange });
}

/** How this process was started, as far as serving cares. */
export interface Start {
  /** By a launcher (relaunch.ts), which it stops with. */
  launched: boolean;
  /** The listening descriptors systemd passed (systemd.ts), which stand in for the binds. */
  activated: readonly number[];
  /** By npm, whose end it stops with (parent-watch.ts). */
  stopWithParent: boolean;
}

/** Serves until stopped. */
export async function serve(config: ResolvedConfig, app: string, { launched, activated, stopWithParent }: Start): Promise<void> {
  const { settings, sources } = config;
  // --log-file is the original grainbows spelling ('-' = stdout); --error-logfile is gunicorn's ('-' = stderr).
  const errorLog = settings.logFile ? openLogDestination(settings.logFile, 'stdout') : openLogDestination(settings.errorLogfile, 'stderr');
  const log = createLogger(settings.logLevel, (line) => errorLog.write(line.trimEnd()));
  const verbose = settings.logLevel === 'debug';
  const predecessor = upgradingFrom();
  try {
    refuseUnsupported(sources);
    if (!predecessor) checkPidfile(settings.pidfile);
    await loadTlsMaterial(settings); // a bad certificate is a usage error, reported before anything starts
    applyProcessSettings(settings, sources);
  } catch (error) {
    fail(error, verbose);
  }
  log.info(`Starting grainbows ${VERSION}`);
  if (config.configFile) log.info(`Config file: ${config.configFile}`);
  if (activated.length > 0) log.info(`Socket activation: listening on the ${activated.length} sockets systemd passed (${settings.bind.join(', ')})`);
  const notifier = await ServiceNotifier.open(process.env, log);
  let hooks = config.hooks;
  await callHook('onStarting', hooks.onStarting, [config], log);
  let control: ControlServer | undefined;
  let watcher: CodeWatcher | undefined;
  let server: GrainbowsServer | undefined;
  const arbiter = new Arbiter({
    log,
    rereadConfig: async () => {
      const next = await resolveConfig(process.argv.slice(2), process.env, process.cwd(), import.meta, { fresh: true });
      if (activated.length === 0 && next.settings.bind.join(' ') !== settings.bind.join(' '))
        log.warning('reload: bind addresses do not change on reload (restart, or upgrade with USR2)');
      hooks = next.hooks;
      await callHook('onReload', hooks.onReload, [server], log);
      return { ...next.settings, app: next.app ?? app, hooksFile: next.hooksFile };
    },
    reopenLogs: () => errorLog.reopen(),
    notify: (state) => notifier?.tell(state),
    startSuccessor: async () => {
      await startSuccessor(running.listeningSockets(), settings.pidfile, log);
    },
    onExit: async (status) => {
      await callHook('onExit', hooks.onExit, [server], log);
      await watcher?.close();
      await control?.close();
      removePidfile(settings.pidfile);
      removePidfile(settings.pidfile && `${settings.pidfile}.oldbin`);
      removePidfile(settings.pidfile && `${settings.pidfile}.2`);
      log.info('Shutting down: Master');
      await errorLog.close();
      process.exit(status);
    },
  });
  arbiter.listen();
  // Started by a launcher (relaunch.ts) that is now gone: nobody can signal this process any more.
  watchLauncher(launched, (why) => {
    if (why === 'orphaned') log.warning('The launching process is gone; stopping gracefully');
    else log.info(`Handling signal: ${why.replace(/^SIG/, '').toLowerCase()} (through the launching process)`);
    arbiter.enqueue('stop').catch(() => {});
  });
  if (stopWithParent)
    watchParent((parent) => {
      log.warning(`The npm process that started grainbows (${parent}) is gone; stopping gracefully`);
      arbiter.enqueue('stop').catch(() => {});
    });
  let running: GrainbowsServer;
  // A binary upgrade's new process writes `<pidfile>.2` until its predecessor is gone (binary-upgrade.ts).
  const pidfile = predecessor ? settings.pidfile && `${settings.pidfile}.2` : settings.pidfile;
  try {
    server = running = await GrainbowsServer.start({
      app,
      ...settings,
      // A binary upgrade's new process listens on the sockets its predecessor hands over.
      ...(predecessor
        ? {
            inheritListeners: async (readsInMain: boolean) =>
              (await receiveListeners(readsInMain)).map((listener, index) => ({
                kind: 'handle' as const,
                inherited: listener,
                was: settings.bind[index] ?? 'inherited',
              })),
          }
        : {}),
      hooksFile: config.hooksFile,
      logger: log,
      // The pidfile is written while this process may still write where it goes (root's /run), as gunicorn does.
      ...(settings.user || settings.group
        ? {
            afterBind: () => {
              writePidfile(pidfile);
              chownToRunAs(unixSocketPaths(settings.bind), settings.user, settings.group);
              dropPrivileges(settings.user, settings.group);
            },
          }
        : {}),
    });
    const startedAt = Date.now();
    control = await ControlServer.open(
      settings.controlSocket || defaultControlPath(process.pid),
      {
        status: async () => ({ ...(await running.stats()), pid: process.pid, workers: running.workers, uptime: (Date.now() - startedAt) / 1000 }),
        run: (command, argument) => arbiter.enqueue(command, argument),
      },
      log,
    );
    log.debug(`Control channel: ${control.path}`);
    if (!settings.user && !settings.group) writePidfile(pidfile);
    if (predecessor) promoteWhenPredecessorExits(predecessor, settings.pidfile, log);
  } catch (error) {
    removePidfile(pidfile);
    fail(error, verbose);
  }
  running.on('fatal', async (error) => {
    log.critical(`${error.message}; shutting down`);
    await running.close({ graceful: false });
    await control?.close();
    removePidfile(settings.pidfile);
    process.exit(error.exitStatus);
  });
  arbiter.serve(running);
  if (settings.reload) {
    watcher = await watchCode(config, app, (files) => {
      log.info(`Changed: ${files.map((file) => path.relative(process.cwd(), file)).join(', ')}; reloading`);
      arbiter.enqueue('reload').catch(() => {}); // a failed reload is logged and the old generation serves on
    });
    log.info(`Reloading on code changes in ${watcher.describe()}`);
  }
  await callHook('whenReady', hooks.whenReady, [running], log);
  notifier?.tell('ready');
  // `-D` returns once the daemon serves: its log must say so by then (a file is written asynchronously).
  await errorLog.flushed();
  reportToStarter({ kind: 'ready' });
}

/** The paths of the unix sockets among `binds` (`unix:PATH`). */
function unixSocketPaths(binds: readonly string[]): string[] {
  return binds.flatMap((bind) => {
    const parsed = parseBind(bind);
    return parsed.kind === 'unix' ? [parsed.path] : [];
  });
}
