#!/usr/bin/env node
/**
 * `grainbows [OPTIONS] MODULE[:EXPORT]`: the command line, built from the settings table.
 * Every failure a user can cause ends in one line on stderr and a documented exit status (errors.ts).
 */
import meow from 'meow';
import { ExitStatus, GrainbowsError } from './errors.js';
import { SETTINGS, type SettingsValues } from './settings.js';
import { GrainbowsServer } from './server.js';
import { createLogger, describeError } from './log.js';

function helpText(): string {
  const rows = SETTINGS.map((row) => {
    const short = 'short' in row ? `-${row.short}, ` : '    ';
    const shown = Array.isArray(row.default) ? row.default.join(' ') : String(row.default);
    return `    ${short}--${row.flag.padEnd(20)} ${row.doc} [${shown}]`;
  });
  return `
  Usage
    $ grainbows [OPTIONS] MODULE[:EXPORT]

  MODULE is a JavaScript file; EXPORT names the export holding the app (default: the default export).

  Options
${rows.join('\n')}
    -h, --help                   Show this help
        --version                Show the version

  Examples
    $ grainbows -b 127.0.0.1:8000 -w 2 examples/hello.js
    $ grainbows -b unix:/run/app.sock app.js:handler
`;
}

function usageError(message: string): never {
  process.stderr.write(`grainbows: ${message}\n`);
  process.exit(ExitStatus.usage);
}

type MeowFlag = { type: 'string' | 'number' | 'boolean'; shortFlag?: string; isMultiple?: boolean };

/** meow reports unknown flags on several lines and exits by itself; we want our one line and status. */
function findUnknownFlag(argv: string[]): string | undefined {
  const long = new Set(['help', 'version', ...SETTINGS.map((row) => row.flag)]);
  const short = new Set(['h', ...SETTINGS.flatMap((row) => ('short' in row ? [row.short] : []))]);
  for (const arg of argv) {
    if (arg === '--') return undefined;
    if (arg.startsWith('--')) {
      const name = arg.slice(2).split('=')[0];
      if (!long.has(name)) return arg.split('=')[0];
    } else if (/^-[A-Za-z]/.test(arg) && !short.has(arg[1])) {
      return arg.slice(0, 2);
    }
  }
  return undefined;
}

function parseCommandLine(): { app: string; settings: SettingsValues } {
  const flags: Record<string, MeowFlag> = {};
  for (const row of SETTINGS) {
    // Everything is read as a string and validated by the table: meow turns a bad number into null silently.
    flags[row.name] = { type: 'string', ...('short' in row ? { shortFlag: row.short } : {}), ...('multiple' in row ? { isMultiple: true } : {}) };
  }
  const unknown = findUnknownFlag(process.argv.slice(2));
  if (unknown) usageError(`unknown flag ${unknown} (see grainbows --help)`);
  let cli;
  try {
    cli = meow(helpText(), {
      importMeta: import.meta,
      flags: { ...flags, help: { type: 'boolean', shortFlag: 'h' } },
      allowUnknownFlags: true, // checked above, with our own message
      autoHelp: true,
      autoVersion: true,
    });
  } catch (error) {
    usageError(describeError(error));
  }
  const values: Record<string, unknown> = {};
  for (const row of SETTINGS) {
    const raw = (cli.flags as Record<string, unknown>)[row.name];
    if (raw === undefined || (Array.isArray(raw) && raw.length === 0)) {
      values[row.name] = row.default;
      continue;
    }
    try {
      values[row.name] = Array.isArray(raw) ? raw.map((item) => row.parse(String(item))) : row.parse(String(raw));
    } catch (error) {
      usageError(error instanceof Error ? error.message : String(error));
    }
  }
  if (cli.input.length !== 1) usageError(cli.input.length === 0 ? 'no app given: grainbows [OPTIONS] MODULE[:EXPORT] (see --help)' : `expected one app, got: ${cli.input.join(' ')}`);
  return { app: cli.input[0], settings: values as unknown as SettingsValues };
}

async function main(): Promise<void> {
  const { app, settings } = parseCommandLine();
  const log = createLogger(settings.logLevel);
  log.info(`Starting grainbows ${process.env.npm_package_version ?? ''}`.trimEnd());
  let server: GrainbowsServer;
  try {
    server = await GrainbowsServer.start({ app, ...settings, logger: log });
  } catch (error) {
    const status = error instanceof GrainbowsError ? error.exitStatus : ExitStatus.failure;
    process.stderr.write(`grainbows: ${describeError(error, settings.logLevel === 'debug').replace(/^GrainbowsError: /, '')}\n`);
    process.exit(status);
  }
  server.on('fatal', async (error) => {
    log.critical(`${error.message}; shutting down`);
    await server.close();
    process.exit(error.exitStatus);
  });
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info(`Handling signal: ${signal}`);
    await server.close();
    log.info('Shutting down: Master');
    process.exit(ExitStatus.ok);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGQUIT'] as const) process.on(signal, () => void stop(signal));
}

await main();
