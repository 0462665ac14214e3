/**
 * The error log, in gunicorn's line format: `[2026-11-23 22:40:30 +0000] [pid] [LEVEL] message`.
 * Used on both threads; an actor's lines go through the worker's stderr to the process's.
 */
import { threadId } from 'node:worker_threads';

export const LOG_LEVELS = ['debug', 'info', 'warning', 'error', 'critical'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

export interface Logger {
  debug(message: string): void;
  info(message: string): void;
  warning(message: string): void;
  error(message: string): void;
  critical(message: string): void;
}

function timestamp(): string {
  const d = new Date();
  const pad = (n: number) => String(n).padStart(2, '0');
  return `${d.getUTCFullYear()}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())} ${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())} +0000`;
}

export function createLogger(level: LogLevel = 'info', write: (line: string) => void = (line) => process.stderr.write(line)): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const who = threadId === 0 ? `${process.pid}` : `${process.pid}:actor-${threadId}`;
  const at = (name: LogLevel) => {
    const enabled = LOG_LEVELS.indexOf(name) >= threshold;
    const tag = name.toUpperCase();
    return enabled ? (message: string) => write(`[${timestamp()}] [${who}] [${tag}] ${message}\n`) : () => {};
  };
  return { debug: at('debug'), info: at('info'), warning: at('warning'), error: at('error'), critical: at('critical') };
}

/** A logger whose lines go to `emit` as (level, message), below the threshold dropped: actors use it to log through the main thread. */
export function createForwardingLogger(level: LogLevel, emit: (level: LogLevel, message: string) => void): Logger {
  const threshold = LOG_LEVELS.indexOf(level);
  const at = (name: LogLevel) => (LOG_LEVELS.indexOf(name) >= threshold ? (message: string) => emit(name, message) : () => {});
  return { debug: at('debug'), info: at('info'), warning: at('warning'), error: at('error'), critical: at('critical') };
}

/** The first line of a stack that names a place in the user's code, e.g. `file:///srv/app.js:3`. */
export function describeError(error: unknown, withStack = false): string {
  if (!(error instanceof Error)) return String(error);
  if (withStack && error.stack) return error.stack;
  const firstStackLine = error.stack?.split('\n')[0] ?? '';
  // A SyntaxError from an ES module puts the file and line on the first line of its stack.
  const where = /^(file:\/\/\S+:\d+)$/.exec(firstStackLine)?.[1];
  return `${error.name}: ${error.message}${where ? ` (${where})` : ''}`;
}
