/**
 * Where access log lines go: a file, appended to, or stdout for `-`. Lines arrive from the actors already
 * formatted (actors/access-log.ts); this side only writes them, and reopens the file on USR1 (rotation).
 */
import { createWriteStream, type WriteStream } from 'node:fs';

export interface AccessLog {
  write: (line: string) => void;
  /** Closes the file and opens the same path afresh (after logrotate moved it away). */
  reopen: () => void;
  close: () => Promise<void>;
}

export function openAccessLog(destination: string): AccessLog {
  if (destination === '-') {
    return { write: (line) => void process.stdout.write(`${line}\n`), reopen: () => {}, close: async () => {} };
  }
  const open = (): WriteStream => {
    const stream = createWriteStream(destination, { flags: 'a' });
    stream.on('error', (error) => process.stderr.write(`grainbows: access log ${destination}: ${error.message}\n`));
    return stream;
  };
  let stream = open();
  return {
    write: (line) => void stream.write(`${line}\n`),
    reopen: () => {
      stream.end();
      stream = open();
    },
    close: () => new Promise((resolve) => stream.end(resolve)),
  };
}
