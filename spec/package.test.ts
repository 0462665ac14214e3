/**
 * The npm package: what `npm pack` would publish. It carries its licence, and every source map it ships
 * points at a source it ships too. And the layout docs/design.md describes: shared/ stands alone, and the
 * actor thread's code does not reach into the main thread's.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT } from './helpers/servers.js';

describe('the npm package', () => {
  it('ships LICENSE, and the sources its source maps name', () => {
    const npm = process.platform === 'win32' ? 'npm.cmd' : 'npm';
    const [packed] = JSON.parse(execFileSync(npm, ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT, encoding: 'utf8' })) as Array<{
      files: Array<{ path: string }>;
    }>;
    const files = new Set(packed.files.map((file) => file.path));
    assert.ok(files.has('LICENSE'));
    assert.ok(files.has('dist/source/cli/cli.js'));
    const maps = [...files].filter((file) => file.endsWith('.js.map'));
    assert.ok(maps.length > 20, `${maps.length} source maps`);
    const missing = maps.flatMap((map) => {
      const { sources } = JSON.parse(readFileSync(path.join(ROOT, map), 'utf8')) as { sources: string[] };
      return sources.map((source) => path.posix.join(path.posix.dirname(map), source)).filter((source) => !files.has(source));
    });
    assert.deepEqual(missing, []);
  });
});

describe('the layout', () => {
  /** The relative imports of every .ts file under `folder`, as `file: specifier`. */
  const importsUnder = (folder: string): string[] =>
    readdirSync(path.join(ROOT, folder), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .flatMap((file) =>
        [...readFileSync(path.join(ROOT, folder, file), 'utf8').matchAll(/from '(\.[^']+)'/g)].map((match) => `${folder}/${file}: ${match[1]}`),
      );

  it('shared/ imports nothing from source/ or actors/', () => {
    assert.deepEqual(
      importsUnder('shared').filter((line) => /'?\.\.\/(source|actors)\//.test(line.split(': ')[1])),
      [],
    );
  });

  it('every module of source/, actors/ and shared/ is in spec/README.md, with test files that exist', () => {
    const index = readFileSync(path.join(ROOT, 'spec/README.md'), 'utf8');
    const rows = new Map([...index.matchAll(/^\| ((?:source|actors|shared)\/[\w/-]+\.ts) \| ([^|]+) \|$/gm)].map((match) => [match[1], match[2]]));
    const modules = ['source', 'actors', 'shared'].flatMap((folder) =>
      readdirSync(path.join(ROOT, folder), { recursive: true, encoding: 'utf8' })
        .filter((file) => file.endsWith('.ts'))
        .map((file) => `${folder}/${file}`),
    );
    assert.deepEqual(
      modules.filter((module) => !rows.has(module)),
      [],
    );
    const tests = new Set(readdirSync(path.join(ROOT, 'spec'), { recursive: true, encoding: 'utf8' }).filter((file) => file.endsWith('.test.ts')));
    for (const [module, named] of rows) {
      for (const name of named
        .replace(/\([^)]*\)/g, '')
        .split(',')
        .map((part) => part.trim()))
        assert.ok(tests.has(`${name}.test.ts`), `${module}: spec/${name}.test.ts`);
    }
  });

  it('actors/ imports nothing from source/ (what both threads need is in shared/)', () => {
    assert.deepEqual(
      importsUnder('actors').filter((line) => /^\.\.\/source\//.test(line.split(': ')[1])),
      [],
    );
  });

  it('the layers of source/ point one way: each folder imports only from the folders before it', () => {
    // The order, bottom up; `source` stands for the modules at its top (server.ts, index.ts, ...).
    const layers = ['shared', 'source/handoff', 'source/accept', 'source/config', 'source/tasks', 'source/lifecycle', 'source', 'source/cli'];
    const upward = importsUnder('source').filter((line) => {
      const [file, specifier] = line.split(': ');
      const from = path.dirname(file);
      const to = path.dirname(path.normalize(path.join(from, specifier)));
      if (to === from || !layers.includes(to)) return false;
      return layers.indexOf(to) > layers.indexOf(from);
    });
    assert.deepEqual(upward, []);
  });

  it('source/ imports nothing from actors/ (the contract is shared/actor-protocol.ts); it knows only the URLs of the thread entries', () => {
    assert.deepEqual(
      importsUnder('source').filter((line) => /(^|\/)actors\//.test(line.split(': ')[1])),
      [],
    );
    const entries = readdirSync(path.join(ROOT, 'source'), { recursive: true, encoding: 'utf8' })
      .filter((file) => file.endsWith('.ts'))
      .flatMap((file) =>
        [...readFileSync(path.join(ROOT, 'source', file), 'utf8').matchAll(/(?:import\(|new URL\()'([^']*actors\/[^']+)'/g)].map((match) => match[1]),
      );
    assert.deepEqual(entries.sort(), ['../../actors/actor.js', '../../actors/task-process.js', '../../actors/task-thread.js']);
  });
});
