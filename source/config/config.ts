/**
 * Resolving the settings, lowest precedence first: the table's defaults, the config file,
 * GRAINBOWS_CMD_ARGS, the command line (gunicorn's order). Every layer is validated by the same table
 * rows, and every value remembers which layer it came from (for --print-config).
 */
import { existsSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseArguments, splitWords, type ParsedArguments } from './arguments.js';
import { GrainbowsError } from '../../shared/errors.js';
import { describeError } from '../../shared/log.js';
import { SETTINGS, configKey, defaultSettings, findSetting, parseSettingValue, type SettingName, type SettingRow, type SettingsValues } from './settings.js';
import { ACTOR_HOOKS, MAIN_HOOKS, TASK_HOOKS, findHookName, type MainHookName } from '../../shared/hooks.js';

export const CONFIG_FILE_NAMES = ['grainbows.config.js', 'grainbows.config.mjs', 'grainbows.config.ts'];

export type SettingSource = 'default' | `environment (${string})` | 'config file' | 'GRAINBOWS_CMD_ARGS' | 'command line' | '--debug';

export interface ResolvedConfig {
  settings: SettingsValues;
  sources: Record<SettingName, SettingSource>;
  /** The config file that was read, if any. */
  configFile?: string;
  /** `MODULE[:EXPORT]`, from the command line (or GRAINBOWS_CMD_ARGS). */
  app?: string;
  printConfig: boolean;
  checkConfig: boolean;
  /** The main-thread hooks the config file defines. */
  hooks: MainHooks;
  /** Set when the config file defines actor hooks: the actors import it themselves. */
  hooksFile?: string;
}

export type MainHooks = Partial<Record<MainHookName, (...args: never[]) => unknown>>;

export interface ConfigFileContents {
  values: Partial<Record<SettingName, unknown>>;
  hooks: MainHooks;
  hasActorHooks: boolean;
}

/** Reads a config file: an ES module whose exports (named, or a default object) are settings. */
export async function loadConfigFile(file: string, fresh = false): Promise<ConfigFileContents> {
  const url = pathToFileURL(file).href;
  let namespace: Record<string, unknown>;
  try {
    // On reload the file must be read again: a new URL is a new module to the ESM loader's cache.
    namespace = (await import(fresh ? `${url}?reload=${Date.now()}` : url)) as Record<string, unknown>;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ERR_UNKNOWN_FILE_EXTENSION') {
      throw new GrainbowsError(
        'E_CONFIG',
        `config file ${file}: Node ${process.versions.node} cannot load .ts files (Node 22.6+ can; or write grainbows.config.js)`,
      );
    }
    const where = error instanceof SyntaxError ? (await import('../../shared/syntax-error.js')).locateSyntaxError(url) : undefined;
    throw new GrainbowsError('E_CONFIG', `config file ${file}${where ? ` (${where})` : ''} failed to load: ${describeError(error)}`, { cause: error });
  }
  const entries: Array<[string, unknown]> = [];
  const defaultExport = namespace.default;
  if (defaultExport !== undefined) {
    if (typeof defaultExport !== 'object' || defaultExport === null || Array.isArray(defaultExport)) {
      throw new GrainbowsError('E_CONFIG', `config file ${file}: the default export must be an object of settings`);
    }
    entries.push(...Object.entries(defaultExport));
  }
  // Named exports win over the default object's keys.
  entries.push(...Object.entries(namespace).filter(([key]) => key !== 'default'));
  const values: Partial<Record<SettingName, unknown>> = {};
  const hooks: MainHooks = {};
  let hasActorHooks = false;
  for (const [key, value] of entries) {
    const hook = findHookName(key);
    if (hook) {
      if (typeof value !== 'function') throw new GrainbowsError('E_CONFIG', `config file ${file}: hook '${key}' must be a function`);
      if ((MAIN_HOOKS as readonly string[]).includes(hook)) hooks[hook as MainHookName] = value as (...args: never[]) => unknown;
      else hasActorHooks = true;
      continue;
    }
    const row = findSetting(key);
    if (!row) {
      const kind =
        typeof value === 'function'
          ? `hook '${key}' (hooks: ${[...MAIN_HOOKS, ...ACTOR_HOOKS, ...TASK_HOOKS].join(', ')})`
          : `setting '${key}' (see docs/settings.md)`;
      throw new GrainbowsError('E_CONFIG', `config file ${file}: unknown ${kind}`);
    }
    try {
      values[row.name] = parseSettingValue(row, value);
    } catch (error) {
      const message = error instanceof Error ? error.message.replace(/^--[\w-]+/, configKey(row.name)) : String(error);
      throw new GrainbowsError('E_CONFIG', `config file ${file}: ${message}`);
    }
  }
  return { values, hooks, hasActorHooks };
}

function findConfigFile(explicit: string | undefined, cwd: string): string | undefined {
  if (explicit) {
    const file = path.resolve(cwd, explicit);
    if (!existsSync(file)) throw new GrainbowsError('E_CONFIG', `config file not found: ${explicit}`);
    return file;
  }
  return CONFIG_FILE_NAMES.map((name) => path.join(cwd, name)).find((file) => existsSync(file));
}

export async function resolveConfig(
  argv: string[],
  env: NodeJS.ProcessEnv,
  cwd: string,
  importMeta: ImportMeta,
  { fresh = false } = {},
): Promise<ResolvedConfig> {
  const fromCli = await parseArguments(argv, 'command line', importMeta);
  const fromEnv: ParsedArguments = env.GRAINBOWS_CMD_ARGS
    ? await parseArguments(splitWords(env.GRAINBOWS_CMD_ARGS), 'GRAINBOWS_CMD_ARGS', importMeta)
    : { values: {}, input: [], printConfig: false, checkConfig: false };
  const configFile = findConfigFile(fromCli.config ?? fromEnv.config, cwd);
  const contents = configFile ? await loadConfigFile(configFile, fresh) : { values: {}, hooks: {}, hasActorHooks: false };
  const fromFile = contents.values;

  const settings = defaultSettings() as unknown as Record<string, unknown>;
  const sources = {} as Record<SettingName, SettingSource>;
  for (const row of SETTINGS as ReadonlyArray<SettingRow>) {
    sources[row.name] = 'default';
    const fromOwnVariable = row.env ? env[row.env] : undefined;
    if (row.env && fromOwnVariable !== undefined && fromOwnVariable !== '') {
      try {
        settings[row.name] = parseSettingValue(row, fromOwnVariable);
      } catch (error) {
        throw new GrainbowsError('E_CONFIG', `${row.env}: ${(error as Error).message}`);
      }
      sources[row.name] = `environment (${row.env})`;
    }
    for (const [layer, source] of [
      [fromFile, 'config file'],
      [fromEnv.values, 'GRAINBOWS_CMD_ARGS'],
      [fromCli.values, 'command line'],
    ] as const) {
      if (layer[row.name] !== undefined) {
        settings[row.name] = layer[row.name];
        sources[row.name] = source;
      }
    }
  }
  if (settings.debug === true) {
    // -d: what a developer wants at their desk, whatever the layers said.
    Object.assign(settings, { workers: 1, logLevel: 'debug', reload: true });
    for (const name of ['workers', 'logLevel', 'reload'] as const) sources[name] = '--debug';
  }
  const app = fromCli.input[0] ?? fromEnv.input[0];
  if (fromCli.input.length > 1) throw new GrainbowsError('E_USAGE', `expected one app, got: ${fromCli.input.join(' ')}`);
  return {
    settings: settings as unknown as SettingsValues,
    sources,
    configFile,
    app,
    printConfig: fromCli.printConfig || fromEnv.printConfig,
    checkConfig: fromCli.checkConfig || fromEnv.checkConfig,
    hooks: contents.hooks,
    hooksFile: contents.hasActorHooks ? configFile : undefined,
  };
}

/** `--print-config`: one `name = value` line per setting, in config-file spelling, with where it came from. */
export function formatConfig({ settings, sources, configFile }: ResolvedConfig): string {
  const lines = [`# config file: ${configFile ?? 'none'}`];
  for (const row of SETTINGS as ReadonlyArray<SettingRow>) {
    const value = (settings as unknown as Record<string, unknown>)[row.name];
    // A mode reads as one only in octal (0o22, as a config file may write it), never as 18.
    const shown = row.name === 'umask' && typeof value === 'number' ? `0o${value.toString(8)}` : JSON.stringify(value);
    lines.push(`${configKey(row.name).padEnd(26)} = ${shown}${sources[row.name] === 'default' ? '' : `  # from ${sources[row.name]}`}`);
  }
  return `${lines.join('\n')}\n`;
}
