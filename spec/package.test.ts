/**
 * The npm package: what `npm pack` would publish. It carries its licence, and every source map it ships
 * points at a source it ships too.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
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
    assert.ok(files.has('dist/source/cli.js'));
    const maps = [...files].filter((file) => file.endsWith('.js.map'));
    assert.ok(maps.length > 20, `${maps.length} source maps`);
    const missing = maps.flatMap((map) => {
      const { sources } = JSON.parse(readFileSync(path.join(ROOT, map), 'utf8')) as { sources: string[] };
      return sources.map((source) => path.posix.join(path.posix.dirname(map), source)).filter((source) => !files.has(source));
    });
    assert.deepEqual(missing, []);
  });
});
