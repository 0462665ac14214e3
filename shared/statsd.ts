/**
 * gunicorn's StatsD metrics (`--statsd-host`, `--statsd-prefix`), under gunicorn's own names so that
 * dashboards and statsd_exporter mappings made for gunicorn work unchanged. Sent with hot-shots over UDP,
 * from where each figure is known: every actor sends its responses (`gunicorn.requests`,
 * `gunicorn.request.duration` in ms, `gunicorn.request.status.<code>`); main sends `gunicorn.workers` each
 * second, as gunicorn's arbiter does, and counts its log lines (`gunicorn.log.<level>`, actors' lines
 * included, since they are written through main's log).
 *
 * Lines are buffered into datagrams of at most 1,400 bytes (one Ethernet frame) and flushed within a second:
 * one packet per request, as gunicorn sends, would cost the actor a system call per metric.
 */
import type { StatsD } from 'hot-shots';
import type { Logger, LogLevel } from './log.js';

/** Where StatsD lines go: `--statsd-host` split, and the prefix with its dot (gunicorn's statsd_prefix). */
export interface StatsdTarget {
  host: string;
  port: number;
  /** `''`, or the prefix ending with one dot. */
  prefix: string;
}

/** The target for `--statsd-host HOST:PORT` and `--statsd-prefix`, or null when off. */
export function statsdTarget(host: string | undefined, prefix: string | undefined): StatsdTarget | null {
  if (!host) return null;
  const at = host.lastIndexOf(':');
  const name = host.slice(0, at).replace(/^\[(.*)\]$/, '$1');
  const trimmed = (prefix ?? '').replace(/\.+$/, '');
  return { host: name, port: Number(host.slice(at + 1)), prefix: trimmed ? `${trimmed}.` : '' };
}

/**
 * A client for `target`; `onError` hears of send failures (an unreachable collector never stops serving).
 * hot-shots is loaded here, not before: a server without `--statsd-host` (main and every actor) never
 * pays for it (docs/performance.md, Memory).
 */
export async function openStatsd(target: StatsdTarget, onError: (error: Error) => void): Promise<StatsD> {
  const { default: StatsDClient } = await import('hot-shots');
  return new StatsDClient({
    host: target.host,
    port: target.port,
    prefix: target.prefix,
    maxBufferSize: 1400,
    bufferFlushInterval: 1000,
    errorHandler: onError,
  });
}

/** One response, as gunicorn reports it; `status` 0 when the connection ended before a response began. */
export function sendResponse(client: StatsD, status: number, seconds: number): void {
  client.increment('gunicorn.requests');
  client.timing('gunicorn.request.duration', seconds * 1000);
  if (status > 0) client.increment(`gunicorn.request.status.${status}`);
}

/** The log levels gunicorn counts. */
const COUNTED_LEVELS = ['critical', 'error', 'warning'] as const satisfies readonly LogLevel[];

/** `log`, counting its critical, error and warning lines as `gunicorn.log.<level>`. */
export function countLogLines(log: Logger, client: StatsD): Logger {
  const counted: Logger = { ...log, debug: (message) => log.debug(message), info: (message) => log.info(message) };
  for (const level of COUNTED_LEVELS) {
    counted[level] = (message) => {
      client.increment(`gunicorn.log.${level}`);
      log[level](message);
    };
  }
  return counted;
}

/** Sends what is buffered and closes the socket. */
export function closeStatsd(client: StatsD): Promise<void> {
  return new Promise((resolve) => client.close(() => resolve()));
}
