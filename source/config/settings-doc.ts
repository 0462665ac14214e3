/**
 * docs/settings.md, generated from the settings table (`npm run docs`). A test fails when the file is stale.
 */
import { pathToFileURL } from 'node:url';
import { COMMAND_FLAGS } from './arguments.js';
import { SERVE_SETTINGS, SETTINGS, configKey, type SettingRow } from './settings.js';

export function renderSettingsDoc(): string {
  const rows = SETTINGS as ReadonlyArray<SettingRow>;
  const out: string[] = [
    '# Settings',
    '',
    '<!-- Generated from source/config/settings.ts by `npm run docs`; do not edit by hand. -->',
    '',
    'Every setting can be given, lowest precedence first, as its default, its own environment variable',
    '(the env column: the variables gunicorn and PaaS platforms use), in the config file',
    '(`-c FILE`, or `grainbows.config.js` / `.mjs` / `.ts` in the working directory), in the',
    '`GRAINBOWS_CMD_ARGS` environment variable (command-line syntax), or on the command line.',
    '`grainbows --print-config` shows the resolved values and where each came from.',
    '',
    "A config file is an ES module whose exports are settings, in gunicorn's spelling (camelCase also works):",
    '',
    '```js',
    "export const use = 'coroutine';",
    'export const worker_connections = 1000;',
    "export const bind = ['127.0.0.1:8000'];",
    "// or: export default { use: 'coroutine', worker_connections: 1000 };",
    '```',
    '',
    'The settings marked **serve()** are also options of `serve()` in the library, under their camelCase',
    'name, with the same defaults and validation (`heapGrowingPercent` and `memoryReducer` excepted: they',
    'change the whole process, so the library leaves them off unless asked).',
    '',
  ];
  const sections = [...new Set(rows.map((row) => row.section))];
  for (const section of sections) {
    out.push(`## ${section}`, '', '| config key | flag | env | default | meaning |', '|---|---|---|---|---|');
    for (const row of rows.filter((r) => r.section === section)) {
      const flag = `${row.short ? `\`-${row.short}\`, ` : ''}\`--${row.flag}\``;
      const serveOption = (SERVE_SETTINGS as readonly string[]).includes(row.name) ? ` **serve()**: \`${row.name}\`.` : '';
      out.push(
        `| \`${configKey(row.name)}\` | ${flag} | ${row.env ? `\`${row.env}\`` : ''} | \`${JSON.stringify(row.default)}\` | ${row.doc.replace(/\|/g, '\\|')}${serveOption} |`,
      );
    }
    out.push('');
  }
  out.push('## Command flags', '', 'Not settings: they choose what the command does.', '', '| flag | meaning |', '|---|---|');
  for (const command of Object.values(COMMAND_FLAGS)) {
    out.push(`| ${'short' in command ? `\`-${command.short}\`, ` : ''}\`--${command.flag}\` | ${command.doc} |`);
  }
  out.push('');
  return out.join('\n');
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) process.stdout.write(renderSettingsDoc());
