/**
 * Command-line words → raw setting values, with meow. Used for the real command line and for
 * GRAINBOWS_CMD_ARGS, so both accept exactly the same flags.
 *
 * meow is loaded only to read words not read before: the CLI that starts node again in its place
 * (source/cli/relaunch.ts) hands its readings over in the environment, and a reload reads the same words,
 * so the serving process never loads meow (3.2 MB of its memory, docs/performance.md, Memory).
 */
import { GrainbowsError } from '../../shared/errors.js';
import { SETTINGS, parseSettingValue, type SettingName, type SettingRow } from './settings.js';

/** Flags that are not settings: they choose what the command does or where the config file is. */
export const COMMAND_FLAGS = {
  config: { flag: 'config', short: 'c', doc: 'Config file (default: grainbows.config.js, .mjs or .ts in the working directory)' },
  printConfig: { flag: 'print-config', doc: 'Print the resolved settings and exit' },
  checkConfig: { flag: 'check-config', doc: 'Check the settings and that the app loads; exit 0 if all is well, 1 if not' },
} as const;

export interface ParsedArguments {
  values: Partial<Record<SettingName, unknown>>;
  input: string[];
  config?: string;
  printConfig: boolean;
  checkConfig: boolean;
}

function helpText(): string {
  const rows = (SETTINGS as ReadonlyArray<SettingRow>).map((row) => {
    const short = row.short ? `-${row.short}, ` : '    ';
    const shown = Array.isArray(row.default) ? row.default.join(' ') : String(row.default);
    const also = row.aliases ? ` (also --${row.aliases.join(', --')})` : '';
    return `    ${short}--${row.flag.padEnd(26)} ${row.doc}${also} [${shown}]`;
  });
  const commands = Object.values(COMMAND_FLAGS).map((c) => `    ${'short' in c ? `-${c.short}, ` : '    '}--${c.flag.padEnd(26)} ${c.doc}`);
  return `
  Usage
    $ grainbows [OPTIONS] MODULE[:EXPORT]

  MODULE is a JavaScript or TypeScript file; EXPORT names the export holding the app (default: the default export).
  Settings come from, lowest first: defaults, the config file, GRAINBOWS_CMD_ARGS, the command line.

  Options
${rows.join('\n')}
${commands.join('\n')}
    -h, --help                       Show this help
    -v, --version                    Show the version

  Examples
    $ grainbows -b 127.0.0.1:8000 -w 2 examples/hello.js
    $ grainbows -b unix:/run/app.sock app.js:handler

  Running server
    $ grainbows ctl [--pid FILE | --socket PATH] [--json] status|reload|resize N|stop|upgrade
    Signals (POSIX): HUP reload, TTIN/TTOU one actor more/less, USR2 binary upgrade, TERM graceful stop,
    INT/QUIT quick stop, USR1 reopen logs. On Windows: Ctrl+C or Ctrl+Break to stop, ctl for the rest.

  Environment
    GRAINBOWS_CMD_ARGS     more options, read before the command line's
    WEB_CONCURRENCY        actors (--workers) when neither the config nor the command line sets them
    FORWARDED_ALLOW_IPS    --forwarded-allow-ips when neither the config nor the command line sets it
    LISTEN_FDS, LISTEN_PID systemd socket activation: serve the sockets systemd passed instead of --bind
    NOTIFY_SOCKET          systemd readiness: READY=1, RELOADING=1, STOPPING=1 are sent there

  Docs: README.md, docs/settings.md, docs/operations.md (in the package).
`;
}

/** meow reports unknown flags on several lines and exits by itself; we want one line and our status. */
function findUnknownFlag(argv: string[]): string | undefined {
  const rows = SETTINGS as ReadonlyArray<SettingRow>;
  const commands = Object.values(COMMAND_FLAGS);
  const long = new Set(['help', 'version', ...rows.flatMap((row) => [row.flag, ...(row.aliases ?? [])]), ...commands.map((c) => c.flag)]);
  const short = new Set(['h', 'v', ...rows.flatMap((row) => (row.short ? [row.short] : [])), ...commands.flatMap((c) => ('short' in c ? [c.short] : []))]);
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

/** meow's key for a row's flag: the flag in camelCase (`--task-threads` → `taskThreads`, `--pid` → `pid`). */
function meowKey(row: SettingRow): string {
  return row.flag.replace(/-([a-z])/g, (_, letter: string) => letter.toUpperCase());
}

type MeowFlag = { type: 'string' | 'boolean'; shortFlag?: string; isMultiple?: boolean; aliases?: string[] };

/** meow reads a lone `-` as a positional argument; gunicorn's `--access-logfile -` means stdout. */
function joinDashValues(argv: string[]): string[] {
  const joined: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    if (argv[i].startsWith('--') && !argv[i].includes('=') && argv[i + 1] === '-') joined.push(`${argv[i++]}=-`);
    else joined.push(argv[i]);
  }
  return joined;
}

/** meow's reading of some words: plain data (strings, booleans, arrays of strings), so it can be carried over. */
interface Reading {
  flags: Record<string, unknown>;
  input: string[];
}

/** This process's readings, by the words read (as JSON). */
const readings = new Map<string, Reading>();

/** The variable that carries readings to the process started in this one's place. */
const CARRIED = 'GRAINBOWS_READ_ARGUMENTS';

/**
 * The environment entry that hands this process's readings to the node it starts in its place (the same
 * pid after execve, or its child under a launcher).
 */
export function carriedReadings(): Record<string, string> {
  return { [CARRIED]: JSON.stringify({ from: process.pid, readings: [...readings] }) };
}

/**
 * Takes the readings carried over by the process that started this one, and removes the variable, so that
 * nothing this process starts (the app's children, a binary upgrade's successor) sees it.
 */
export function adoptCarriedReadings(env: NodeJS.ProcessEnv = process.env): void {
  const text = env[CARRIED];
  delete env[CARRIED];
  if (!text) return;
  try {
    const carried = JSON.parse(text) as { from: number; readings: [string, Reading][] };
    if (carried.from !== process.pid && carried.from !== process.ppid) return; // set by someone else
    for (const [words, reading] of carried.readings) readings.set(words, reading);
  } catch {
    // unreadable: read the words again
  }
}

/**
 * Parses `argv`. `origin` names where the words came from, for messages. Only the real command line
 * answers --help and --version.
 */
export async function parseArguments(argv: string[], origin: 'command line' | 'GRAINBOWS_CMD_ARGS', importMeta: ImportMeta): Promise<ParsedArguments> {
  const where = origin === 'command line' ? '' : ` (in ${origin})`;
  const code = origin === 'command line' ? 'E_USAGE' : 'E_CONFIG';
  const unknown = findUnknownFlag(argv);
  if (unknown) throw new GrainbowsError(code, `unknown flag ${unknown}${where} (see grainbows --help)`);
  const flags: Record<string, MeowFlag> = {};
  for (const row of SETTINGS as ReadonlyArray<SettingRow>) {
    // Everything is read as a string and validated by the table: meow turns a bad number into null silently.
    // Keyed by the flag, not the setting's name: `--pid` sets `pidfile`, and meow knows a flag by its key.
    flags[meowKey(row)] = {
      type: row.type === 'boolean' ? 'boolean' : 'string',
      ...(row.short ? { shortFlag: row.short } : {}),
      ...(row.multiple ? { isMultiple: true } : {}),
      ...(row.aliases ? { aliases: row.aliases } : {}),
    };
  }
  flags.config = { type: 'string', shortFlag: 'c' };
  flags.printConfig = { type: 'boolean' };
  flags.checkConfig = { type: 'boolean' };
  const interactive = origin === 'command line';
  const words = JSON.stringify([origin, argv]);
  let reading = readings.get(words);
  if (!reading) {
    const { default: meow } = await import('meow');
    const cli = meow(helpText(), {
      importMeta,
      argv: joinDashValues(argv),
      flags: { ...flags, help: { type: 'boolean', shortFlag: 'h' }, version: { type: 'boolean', shortFlag: 'v' } },
      allowUnknownFlags: true, // checked above, with our own message
      booleanDefault: undefined, // an absent switch must not override the config file with false
      autoHelp: interactive,
      autoVersion: interactive,
    });
    reading = { flags: cli.flags as Record<string, unknown>, input: cli.input };
    readings.set(words, reading);
  }
  const raw = reading.flags;
  const values: Partial<Record<SettingName, unknown>> = {};
  for (const row of SETTINGS as ReadonlyArray<SettingRow>) {
    const value = raw[meowKey(row)];
    if (value === undefined || (Array.isArray(value) && value.length === 0)) continue;
    try {
      values[row.name] = parseSettingValue(row, value);
    } catch (error) {
      throw new GrainbowsError(code, `${error instanceof Error ? error.message : String(error)}${where}`);
    }
  }
  return {
    values,
    input: reading.input,
    config: typeof raw.config === 'string' ? raw.config : undefined,
    printConfig: raw.printConfig === true,
    checkConfig: raw.checkConfig === true,
  };
}

/**
 * Splits GRAINBOWS_CMD_ARGS into words as a POSIX shell would for simple quoting ('…', "…", \x), as
 * gunicorn splits GUNICORN_CMD_ARGS with Python's shlex.split. Hand-written: shell-quote, the maintained
 * parser, also expands `$VAR` and turns `;`, `|`, `>` and `*` into operator objects, which a settings
 * string must not do (`--access-logformat '%(h)s > $x'`).
 */
export function splitWords(text: string): string[] {
  const words: string[] = [];
  let current = '';
  let quote: '"' | "'" | null = null;
  let started = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quote) {
      if (char === quote) quote = null;
      else if (char === '\\' && quote === '"' && i + 1 < text.length) current += text[++i];
      else current += char;
    } else if (char === '"' || char === "'") {
      quote = char;
      started = true;
    } else if (char === '\\' && i + 1 < text.length) {
      current += text[++i];
      started = true;
    } else if (/\s/.test(char)) {
      if (started) words.push(current);
      current = '';
      started = false;
    } else {
      current += char;
      started = true;
    }
  }
  if (quote) throw new GrainbowsError('E_CONFIG', `unbalanced ${quote} in GRAINBOWS_CMD_ARGS`);
  if (started) words.push(current);
  return words;
}
