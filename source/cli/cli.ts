#!/usr/bin/env node
/**
 * `grainbows [OPTIONS] MODULE[:EXPORT]`: settings resolved from the table's layers (config.ts), then one
 * of three things: print them, check them (and that the app loads), or serve (serve.ts).
 * Every failure a user can cause ends in one line on stderr and a documented exit status (errors.ts).
 * Only what deciding needs is imported up front: on Node 20 this process may only be the launcher of the
 * server (relaunch.ts), and what it loads it keeps for as long as the server runs.
 */
import { ExitStatus, GrainbowsError } from '../../shared/errors.js';
import { formatConfig, resolveConfig, type ResolvedConfig } from '../config/config.js';
import { adoptCarriedReadings, carriedReadings } from '../config/arguments.js';
import { inheritedDescriptors } from '../accept/bind.js';
import v8 from 'node:v8';
import { claimLauncher, keepSemiSpaceFlagToMain, missingMainFlags, relaunch } from './relaunch.js';
import { forgetStartEnvironment, missingStartEnvironment } from '../lifecycle/start-environment.js';
import { describeError } from '../../shared/log.js';
import { activatedDescriptors, forgetActivation } from '../lifecycle/systemd.js';
import { startedByNpm } from './parent-watch.js';
import { daemonize, isDaemonChild, refuseUnsupported } from './process-settings.js';
import { upgradingFrom } from '../lifecycle/binary-upgrade.js';
import { fail } from './fail.js';

async function main(): Promise<void> {
  const launched = claimLauncher();
  adoptCarriedReadings();
  if (process.argv[2] === 'ctl') {
    const { runCtl } = await import('./ctl.js');
    process.exit(await runCtl(process.argv.slice(3), import.meta));
  }
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
      const { checkApp } = await import('./check.js');
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
  const startEnvironment = missingStartEnvironment(config.settings);
  const stopWithParent = !launched && startedByNpm() && !isDaemonChild() && upgradingFrom() === undefined;
  if (mainFlags.length > 0 || Object.keys(startEnvironment).length > 0)
    process.exit(await relaunch(mainFlags, inheritedDescriptors(config.settings.bind), { stopWithParent, env: { ...startEnvironment, ...carriedReadings() } }));
  if (config.settings.daemon && !isDaemonChild()) {
    try {
      refuseUnsupported(config.sources);
    } catch (error) {
      fail(error, verbose);
    }
    process.exit(await daemonize(process.argv.slice(1)));
  }
  forgetActivation(process.env); // this process serves: none it starts (an upgrade's successor) may claim them
  forgetStartEnvironment();
  keepSemiSpaceFlagToMain(v8);
  // Only the serving process loads the server (a launcher exits above without it).
  const { serve } = await import('./serve.js');
  await serve(config, config.app, { launched, activated, stopWithParent });
}

await main();
