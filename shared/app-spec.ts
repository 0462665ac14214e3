/**
 * `MODULE[:EXPORT]` from the command line, resolved to something an actor can import.
 *
 * The split happens at the last colon only when what follows is an identifier and what precedes is not a
 * bare drive letter, so `C:\app\server.js` and `C:\app\server.js:app` both work (docs/design.md, pitfall 8).
 */
import { existsSync, statSync } from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { GrainbowsError } from './errors.js';

export interface AppSpec {
  /** file: URL of the module, what `import()` takes on every platform. */
  url: string;
  /** The export that holds the app; `default` when none was named. */
  exportName: string;
  /** As the user wrote it, for messages. */
  display: string;
}

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** Splits `MODULE[:EXPORT]` without touching the file system. */
export function splitAppSpec(text: string): { modulePath: string; exportName: string } {
  const colon = text.lastIndexOf(':');
  if (colon > 0) {
    const after = text.slice(colon + 1);
    const before = text.slice(0, colon);
    const bareDriveLetter = /^[A-Za-z]$/.test(before);
    if (IDENTIFIER.test(after) && !bareDriveLetter) return { modulePath: before, exportName: after };
  }
  return { modulePath: text, exportName: 'default' };
}

export function parseAppSpec(text: string, cwd: string = process.cwd()): AppSpec {
  if (!text) throw new GrainbowsError('E_APP_SPEC', 'no app given: pass MODULE[:EXPORT], e.g. examples/hello.js');
  const { modulePath, exportName } = splitAppSpec(text);
  const absolute = path.isAbsolute(modulePath) || /^[A-Za-z]:[\\/]/.test(modulePath) ? modulePath : path.resolve(cwd, modulePath);
  if (!existsSync(absolute)) throw new GrainbowsError('E_APP_NOT_FOUND', `app module not found: ${modulePath} (looked at ${absolute})`);
  if (!statSync(absolute).isFile()) throw new GrainbowsError('E_APP_NOT_FOUND', `app module is not a file: ${absolute}`);
  return { url: pathToFileURL(absolute).href, exportName, display: text };
}
