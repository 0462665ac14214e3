/**
 * Where a syntax error is, as `path:line`. A dynamic import's SyntaxError does not say (Node 20); the
 * syntax checker of the same runtime does. The file is checked as an ES module through stdin, because
 * `node --check FILE` on a `.js` outside any package says nothing on Node 20.20 (it guesses the module
 * kind). Only called after an import already failed with a SyntaxError.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

export function locateSyntaxError(url: string): string | undefined {
  if (!url.startsWith('file:')) return undefined;
  const file = fileURLToPath(url);
  try {
    execFileSync(process.execPath, ['--input-type=module', '--check'], { input: readFileSync(file), stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (error) {
    const line = /^\[stdin\]:(\d+)$/m.exec(String((error as { stderr?: Buffer }).stderr ?? ''))?.[1];
    if (line) return `${file}:${line}`;
  }
  return undefined;
}
