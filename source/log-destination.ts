/**
 * Where log lines go: a file, appended to and reopened on USR1 (log rotation), or a standard stream for
 * `-`. Used by the access log (`-` = stdout) and the error log (`-` = stderr), as in gunicorn.
 */
import { createWriteStream, type WriteStream } from 'node:fs';

export interface LogDestination {
  /** Writes one line (the newline is added here). */
  write: (line: string) => void;
  /** Closes the file and opens the same path afresh (after logrotate moved it away). */
  reopen: () => void;
  /** Resolves once every line written so far has reached the file (or the stream). */
  flushed: () => Promise<void>;
  close: () => Promise<void>;
}

export function openLogDestination(destination: string, dash: 'stdout' | 'stderr'): LogDestination {
  if (destination === '-') {
    const stream = dash === 'stdout' ? process.stdout : process.stderr;
    return {
      write: (line) => void stream.write(`${line}\n`),
      reopen: () => {},
      flushed: () => new Promise((resolve) => stream.write('', () => resolve())),
      close: async () => {},
    };
  }
  const open = (): WriteStream => {
    const stream = createWriteStream(destination, { flags: 'a' });
    stream.on('error', (error) => process.stderr.write(`grainbows: log file ${destination}: ${error.message}\n`));
    return stream;
  };
  let stream = open();
  return {
    write: (line) => void stream.write(`${line}\n`),
    reopen: () => {
      stream.end();
      stream = open();
    },
    // A file stream writes in order, so an empty write's callback comes after every earlier line's.
    flushed: () => new Promise((resolve) => stream.write('', () => resolve())),
    close: () => new Promise((resolve) => stream.end(resolve)),
  };
}
