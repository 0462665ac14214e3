/**
 * TypeScript apps: `grainbows app.ts` serves them. Where Node strips types itself (22.18+, 26) the actors
 * import the file as it is; on Node 20 the actors import it through tsx when the app can resolve tsx; and
 * without either, the CLI says in one line what to do, with exit status 4.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, it } from 'node:test';
import { fixture, runCli, startCli, strategies } from './helpers/servers.js';

const stripsTypes = Boolean((process.features as { typescript?: string | false }).typescript);

const handoffs = await strategies();

describe('TypeScript apps', () => {
  for (const handoff of handoffs) {
    it(`serves app.ts (${stripsTypes ? "Node's type stripping" : 'through tsx'}, ${handoff})`, async () => {
      const cli = await startCli(['-b', '127.0.0.1:0', '-w', '2', '--handoff', handoff, fixture('typescript-app.ts')]);
      try {
        const response = await fetch(cli.url);
        assert.equal(response.status, 200);
        assert.equal(await response.text(), `hello from TypeScript on Node ${process.versions.node}`);
      } finally {
        await cli.stop();
      }
    });
  }

  it(stripsTypes ? 'serves app.ts with no tsx anywhere near it' : 'without tsx, says in one line how to run app.ts, and exits 4', async () => {
    // A directory with no node_modules above it: tsx cannot be resolved from there.
    const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-ts-'));
    const app = path.join(dir, 'app.ts');
    copyFileSync(fixture('typescript-app.ts'), app);
    if (stripsTypes) {
      const cli = await startCli(['-b', '127.0.0.1:0', '-w', '1', app]);
      try {
        assert.match(await (await fetch(cli.url)).text(), /^hello from TypeScript/);
      } finally {
        await cli.stop();
      }
      return;
    }
    const result = await runCli(['-b', '127.0.0.1:0', '-w', '1', app]);
    assert.equal(result.status, 4);
    const errors = result.stderr.split('\n').filter((line) => line.startsWith('grainbows:'));
    assert.deepEqual(errors, [
      `grainbows: ${app} is TypeScript, which Node ${process.versions.node} does not run: install tsx beside the app (npm install --save-dev tsx), use Node 22.18 or later, or compile the app to JavaScript`,
    ]);
  });
});
