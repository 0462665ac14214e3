/**
 * Where log lines go: a file, appended to and reopened on USR1 (log rotation), or a standard stream for
 * `-`. Used by the access log (`-` = stdout) and the error log (`-` = stderr), as in gunicorn.
 */
import { createWriteStream, openSync, type WriteStream } from 'node:fs';

export interface LogDestination {
  /** Writes one line (the newline is added here). */
  write: (line: string) => void;
  /**
   * Opens the same path afresh (after logrotate moved the file away) and closes the old file. When the path
   * cannot be opened (a directory or file the process may not write, after `-u`), lines go on to the old
   * file and the error is returned for the caller to log: a rotation never loses the log.
   */
  reopen: () => Error | undefined;
  /** Resolves once every line written so far has reached the file (or the stream). */
  flushed: () => Promise<void>;
  close: () => Promise<void>;
}

export function openLogDestination(destination: string, dash: 'stdout' | 'stderr'): LogDestination {
  if (destination === '-') {
    const stream = dash === 'stdout' ? process.stdout : process.stderr;
    return {
      write: (line) => void stream.write(`${line}\n`),
      reopen: () => undefined,
      flushed: () => new Promise((resolve) => stream.write('', () => resolve())),
      close: async () => {},
    };
  }
  // Opened synchronously, so that a path that cannot be opened throws here rather than failing later.
  const open = (): WriteStream => {
    const stream = createWriteStream(destination, { fd: openSync(destination, 'a') });
    stream.on('error', (error) => process.stderr.write(`grainbows: log file ${destination}: ${error.message}\n`));
    return stream;
  };
  let stream = open();
  return {
    write: (line) => void stream.write(`${line}\n`),
    reopen: () => {
      let reopened: WriteStream;
      try {
        reopened = open();
      } catch (error) {
        return error instanceof Error ? error : new Error(String(error));
      }
      stream.end();
      stream = reopened;
      return undefined;
    },
    // A file stream writes in order, so an empty write's callback comes after every earlier line's.
    flushed: () => new Promise((resolve) => stream.write('', () => resolve())),
    close: () => new Promise((resolve) => stream.end(resolve)),
  };
}
