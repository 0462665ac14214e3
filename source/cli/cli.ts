#!/usr/bin/env node
/**
 * `grainbows [OPTIONS] MODULE[:EXPORT]`: settings resolved from the table's layers (config.ts), then one
 * of three things: print them, check them (and that the app loads), or serve.
 * Every failure a user can cause ends in one line on stderr and a documented exit status (errors.ts).
 */
import { ExitStatus, GrainbowsError } from '../../shared/errors.js';
import { formatConfig, resolveConfig, type ResolvedConfig } from '../config/config.js';
import { GrainbowsServer } from '../server.js';
import { inheritedDescriptors, parseBind } from '../accept/bind.js';
import { checkApp } from './check.js';
import v8 from 'node:v8';
import { claimLauncher, keepSemiSpaceFlagToMain, missingMainFlags, relaunch, watchLauncher } from './relaunch.js';
import { createLogger, describeError } from '../../shared/log.js';
import { Arbiter } from '../lifecycle/arbiter.js';
import { ControlServer, defaultControlPath } from '../lifecycle/control.js';
import { runCtl } from './ctl.js';
import { callHook } from '../../shared/hooks.js';
import { openLogDestination } from '../log-destination.js';
import { loadTlsMaterial } from '../accept/tls.js';
import { VERSION } from '../version.js';
import { CodeWatcher } from '../lifecycle/code-watcher.js';
import { promoteWhenPredecessorExits, receiveListeners, startSuccessor, upgradingFrom } from '../lifecycle/binary-upgrade.js';
import { parseAppSpec } from '../../shared/app-spec.js';
import { activatedDescriptors, forgetActivation, ServiceNotifier } from '../lifecycle/systemd.js';
import { startedByNpm, watchParent } from './parent-watch.js';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  applyProcessSettings,
  checkPidfile,
  daemonize,
  chownToRunAs,
  dropPrivileges,
  isDaemonChild,
  refuseUnsupported,
  removePidfile,
  reportToStarter,
  writePidfile,
} from './process-settings.js';

function fail(error: unknown, verbose: boolean): never {
  const status = error instanceof GrainbowsError ? error.exitStatus : ExitStatus.failure;
  const message = describeError(error, verbose).replace(/^GrainbowsError: /, '');
  process.stderr.write(`grainbows: ${message}\n`);
  reportToStarter({ kind: 'failed', message, status });
  process.exit(status);
}

/** --reload: the app module's directory, the config file and the extra files. */
async function watchCode(config: ResolvedConfig, app: string, onChange: (files: string[]) => void): Promise<CodeWatcher> {
  const appDirectory = path.dirname(fileURLToPath(parseAppSpec(app).url));
  const extraFiles = [...config.settings.reloadExtraFile, ...(config.configFile ? [config.configFile] : [])];
  return CodeWatcher.start({ roots: [appDirectory], extraFiles, onChange });
}

/** How this process was started, as far as serving cares. */
interface Start {
  /** By a launcher (relaunch.ts), which it stops with. */
  launched: boolean;
  /** The listening descriptors systemd passed (systemd.ts), which stand in for the binds. */
  activated: readonly number[];
  /** By npm, whose end it stops with (parent-watch.ts). */
  stopWithParent: boolean;
}

/** Serves until stopped. */
async function serve(config: ResolvedConfig, app: string, { launched, activated, stopWithParent }: Start): Promise<void> {
  const { settings, sources } = config;
  // --log-file is the original grainbows spelling ('-' = stdout); --error-logfile is gunicorn's ('-' = stderr).
  const errorLog = settings.logFile ? openLogDestination(settings.logFile, 'stdout') : openLogDestination(settings.errorLogfile, 'stderr');
  const log = createLogger(settings.logLevel, (line) => errorLog.write(line.trimEnd()));
  const verbose = settings.logLevel === 'debug';
  const predecessor = upgradingFrom();
  try {
    refuseUnsupported(sources);
    if (!predecessor) checkPidfile(settings.pidfile);
    loadTlsMaterial(settings); // a bad certificate is a usage error, reported before anything starts
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

async function main(): Promise<void> {
  const launched = claimLauncher();
  if (process.argv[2] === 'ctl') process.exit(await runCtl(process.argv.slice(3), import.meta));
  const verbose = process.argv.includes('--log-level=debug') || process.argv.join(' ').includes('--log-level debug');
  let config: ResolvedConfig;
  try {
    config = await resolveConfig(process.argv.slice(2), process.env, process.cwd(), import.meta);
  } catch (error) {
    // --check-config answers 0 or 1 whatever is wrong; otherwise each kind of error has its own status.
    if (process.argv.includes('--check-config') && !(error instanceof GrainbowsError && error.code === 'E_USAGE')) {
      process.stderr.write(`grainbows: ${describeError(error, verbose).replace(/^GrainbowsError: /, '')}\n`);
      process.exit(ExitStatus.failure);
    }
    fail(error, verbose);
  }
  if (config.printConfig) {
    process.stdout.write(formatConfig(config));
    process.exit(ExitStatus.ok);
  }
  if (!config.app) fail(new GrainbowsError('E_USAGE', 'no app given: grainbows [OPTIONS] MODULE[:EXPORT] (see --help)'), verbose);
  if (config.checkConfig) {
    try {
      const kind = await checkApp(config.app, config.settings);
      process.stdout.write(`OK: settings are valid and ${config.app} loads as a ${kind} app\n`);
      process.exit(ExitStatus.ok);
    } catch (error) {
      process.stderr.write(`grainbows: ${describeError(error, verbose).replace(/^GrainbowsError: /, '')}\n`);
      process.exit(ExitStatus.failure);
    }
  }
  // systemd's sockets replace the binds, as in gunicorn; on Node 20 they were passed to the launcher.
  const activated = activatedDescriptors(process.env, launched ? [process.pid, process.ppid] : [process.pid]);
  if (activated.length > 0) config.settings.bind = activated.map((fd) => `fd://${fd}`);
  // Before --daemon, so that the daemon is started with them too.
  const mainFlags = missingMainFlags(config.settings);
  const stopWithParent = !launched && startedByNpm() && !isDaemonChild() && upgradingFrom() === undefined;
  if (mainFlags.length > 0) process.exit(await relaunch(mainFlags, inheritedDescriptors(config.settings.bind), { stopWithParent }));
  if (config.settings.daemon && !isDaemonChild()) {
    try {
      refuseUnsupported(config.sources);
    } catch (error) {
      fail(error, verbose);
    }
    process.exit(await daemonize(process.argv.slice(1)));
  }
  forgetActivation(process.env); // this process serves: none it starts (an upgrade's successor) may claim them
  keepSemiSpaceFlagToMain(v8);
  await serve(config, config.app, { launched, activated, stopWithParent });
}

await main();
