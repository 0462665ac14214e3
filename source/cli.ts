#!/usr/bin/env node
/**
 * `grainbows [OPTIONS] MODULE[:EXPORT]`: settings resolved from the table's layers (config.ts), then one
 * of three things: print them, check them (and that the app loads), or serve.
 * Every failure a user can cause ends in one line on stderr and a documented exit status (errors.ts).
 */
import { ExitStatus, GrainbowsError } from './errors.js';
import { formatConfig, resolveConfig, type ResolvedConfig } from './config.js';
import { GrainbowsServer } from './server.js';
import { checkApp } from './check.js';
import { createLogger, describeError } from './log.js';
import { Arbiter } from './arbiter.js';

function fail(error: unknown, verbose: boolean): never {
  const status = error instanceof GrainbowsError ? error.exitStatus : ExitStatus.failure;
  process.stderr.write(`grainbows: ${describeError(error, verbose).replace(/^GrainbowsError: /, '')}\n`);
  process.exit(status);
}

async function serve(config: ResolvedConfig, app: string): Promise<void> {
  const { settings } = config;
  const log = createLogger(settings.logLevel);
  log.info(`Starting grainbows ${process.env.npm_package_version ?? ''}`.trimEnd());
  if (config.configFile) log.info(`Config file: ${config.configFile}`);
  const arbiter = new Arbiter({
    log,
    rereadConfig: async () => {
      const next = await resolveConfig(process.argv.slice(2), process.env, process.cwd(), import.meta, { fresh: true });
      if (next.settings.bind.join(' ') !== settings.bind.join(' ')) log.warning('reload: bind addresses do not change on reload (restart, or upgrade with USR2)');
      return { ...next.settings, app: next.app ?? app };
    },
    onExit: (status) => process.exit(status),
  });
  arbiter.listen();
  let server: GrainbowsServer;
  try {
    server = await GrainbowsServer.start({ app, ...settings, logger: log });
  } catch (error) {
    fail(error, settings.logLevel === 'debug');
  }
  server.on('fatal', async (error) => {
    log.critical(`${error.message}; shutting down`);
    await server.close({ graceful: false });
    process.exit(error.exitStatus);
  });
  arbiter.serve(server);
}

async function main(): Promise<void> {
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
  await serve(config, config.app);
}

await main();
