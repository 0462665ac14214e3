/**
 * Where a syntax error is, as `path:line`. A dynamic import's SyntaxError does not say (Node 20 to 26),
 * neither for the app module nor for a module it imports; the syntax checker of the same runtime does.
 * So we check the app module, then the local modules it imports (relative specifiers, breadth first, a
 * bounded number), until one fails. Each file is checked as an ES module through stdin, because
 * `node --check FILE` on a `.js` outside any package says nothing on Node 20.20 (it guesses the module
 * kind). Only called after an import already failed with a SyntaxError, and imported only then: every
 * actor would otherwise load node:child_process for nothing.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

/** Most files checked before giving up: each check is a short-lived process. */
const MOST_FILES = 50;

const RELATIVE_IMPORT = /(?:\bfrom\s*|\bimport\s*\(?\s*)['"](\.{1,2}\/[^'"]+)['"]/g;

function syntaxErrorLine(source: Buffer): string | undefined {
  try {
    execFileSync(process.execPath, ['--input-type=module', '--check'], { input: source, stdio: ['pipe', 'ignore', 'pipe'], timeout: 10_000 });
  } catch (error) {
    return /^\[stdin\]:(\d+)$/m.exec(String((error as { stderr?: Buffer }).stderr ?? ''))?.[1];
  }
  return undefined;
}

export function locateSyntaxError(url: string): string | undefined {
  if (!url.startsWith('file:')) return undefined;
  const queue = [fileURLToPath(url)];
  const seen = new Set(queue);
  for (let checked = 0; queue.length > 0 && checked < MOST_FILES; checked++) {
    const file = queue.shift()!;
    const source = readFileSync(file);
    const line = syntaxErrorLine(source);
    if (line) return `${file}:${line}`;
    for (const [, specifier] of source.toString('utf8').matchAll(RELATIVE_IMPORT)) {
      const imported = path.resolve(path.dirname(file), specifier);
      if (!seen.has(imported) && existsSync(imported) && /\.(m?js)$/.test(imported)) {
        seen.add(imported);
        queue.push(imported);
      }
    }
  }
  return undefined;
}
