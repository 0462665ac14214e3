/**
 * Without a server: log files written off the event loop (source/log-destination.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { openLogDestination } from '../../source/log-destination.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

describe('log files', () => {
  it('hold every line written so far once flushed() resolves (-D reports ready only then)', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'grainbows-log-')), 'error.log');
    const destination = openLogDestination(file, 'stderr');
    try {
      for (let i = 0; i < 2000; i++) destination.write(`line ${i} ${'x'.repeat(40)}`);
      await destination.flushed();
      const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
      assert.equal(lines.length, 2000);
      assert.equal(lines[1999].slice(0, 9), 'line 1999');
    } finally {
      await destination.close();
    }
  });
});
