/**
 * Where access log lines go: a file, appended to, or stdout for `-`. Lines arrive from the actors already
 * formatted (actors/access-log.ts); this side only writes them.
 */
import { createWriteStream } from 'node:fs';

export interface AccessLog {
  write: (line: string) => void;
  close: () => Promise<void>;
}

export function openAccessLog(destination: string): AccessLog {
  if (destination === '-') {
    return { write: (line) => void process.stdout.write(`${line}\n`), close: async () => {} };
  }
  const stream = createWriteStream(destination, { flags: 'a' });
  stream.on('error', (error) => process.stderr.write(`grainbows: access log ${destination}: ${error.message}\n`));
  return {
    write: (line) => void stream.write(`${line}\n`),
    close: () => new Promise((resolve) => stream.end(resolve)),
  };
}
