/**
 * The values of every setting, by name: the shape the settings table (source/config/settings.ts) fills,
 * with each setting's default, validation and documentation there. Here so that both threads can name a
 * setting's type (the actors read theirs from ActorSettings), and with the lists of choices the table
 * validates against.
 */
import type { LogLevel } from './log.js';
import type { CertReqs, TlsMinVersion } from './tls-options.js';

export const CONCURRENCY_MODELS = ['coroutine', 'sync'] as const;
export type ConcurrencyModel = (typeof CONCURRENCY_MODELS)[number];

/** How connections reach actors (docs/design.md, The two hand-offs). */
export type HandoffStrategy = 'relay' | 'transfer';
export const HANDOFF_CHOICES = ['auto', 'relay', 'transfer'] as const;

/** What to do with header names containing `_` (CGI-style ambiguity with `-`). */
export type HeaderMap = 'drop' | 'refuse' | 'dangerous';
export const HEADER_MAPS: readonly HeaderMap[] = ['drop', 'refuse', 'dangerous'];

/** Which parser judges requests: Node's alone, or gunicorn's leniencies in front of it. */
export type HttpCompat = 'node' | 'gunicorn';
export const HTTP_COMPAT_MODES: readonly HttpCompat[] = ['node', 'gunicorn'];

/** gunicorn's names of the HTTP versions offered by ALPN (`--http-protocols`). */
export const HTTP_PROTOCOLS = ['h1', 'h2'] as const;
export type HttpProtocol = (typeof HTTP_PROTOCOLS)[number];

/** gunicorn 26.2's cleartext HTTP/2 (h2c) mechanisms (`--http2-cleartext`). */
export const HTTP2_CLEARTEXT = ['off', 'prior-knowledge', 'upgrade', 'both'] as const;
export type Http2Cleartext = (typeof HTTP2_CLEARTEXT)[number];

/** Who may speak cleartext HTTP/2 to the actors, and how it may start (`--http2-cleartext`). */
export interface CleartextHttp2 {
  /** The trusted peers (`--forwarded-allow-ips`): everyone else is served HTTP/1.x. */
  from: string;
  /** A connection may open with HTTP/2's preface. */
  priorKnowledge: boolean;
  /** An HTTP/1.1 request may ask `Upgrade: h2c`. */
  upgrade: boolean;
}

/** What `--http2-cleartext` turns on: null when off. */
export function cleartextHttp2Of(mode: Http2Cleartext, forwardedAllowIps: string): CleartextHttp2 | null {
  if (mode === 'off') return null;
  return { from: forwardedAllowIps, priorKnowledge: mode !== 'upgrade', upgrade: mode !== 'prior-knowledge' };
}

/** The SETTINGS an HTTP/2 connection is served with (`--http2-*`). */
export interface Http2Limits {
  maxConcurrentStreams: number;
  initialWindowSize: number;
  maxFrameSize: number;
  maxHeaderListSize: number;
}

export interface SettingsValues {
  use: ConcurrencyModel;
  bind: string[];
  workers: number;
  workerConnections: number;
  handoff: HandoffStrategy | 'auto';
  keepAlive: number;
  backlog: number;
  limitRequestLine: number;
  limitRequestFields: number;
  limitRequestFieldSize: number;
  headerMap: HeaderMap;
  httpCompat: HttpCompat;
  permitObsoleteFolding: boolean;
  stripHeaderSpaces: boolean;
  permitUnconventionalHttpMethod: boolean;
  casefoldHttpMethod: boolean;
  heapGrowingPercent: number;
  memoryReducer: boolean;
  heapTrimAfter: number;
  mainSemiSpaceSize: number;
  mallocArenas: number;
  logLevel: LogLevel;
  accessLogfile: string;
  accessLogformat: string;
  metricsBind: string;
  statsdHost: string;
  statsdPrefix: string;
  timeout: number;
  gracefulTimeout: number;
  maxRequests: number;
  maxRequestsJitter: number;
  pidfile: string;
  controlSocket: string;
  procName: string;
  umask: number;
  chdir: string;
  rawEnv: string[];
  user: string;
  group: string;
  daemon: boolean;
  errorLogfile: string;
  logFile: string;
  forwardedAllowIps: string;
  proxyProtocol: boolean;
  stickySessions: boolean;
  proxyAllowFrom: string;
  certfile: string;
  keyfile: string;
  caCerts: string;
  /** e.g. `h2,h1`: the offered versions, most preferred first. */
  httpProtocols: string;
  http2MaxConcurrentStreams: number;
  http2InitialWindowSize: number;
  http2MaxFrameSize: number;
  http2MaxHeaderListSize: number;
  http2Cleartext: Http2Cleartext;
  certReqs: CertReqs;
  ciphers: string;
  tlsMinVersion: TlsMinVersion;
  reload: boolean;
  reloadExtraFile: string[];
  debug: boolean;
  requestTimeout: number;
  headerTimeout: number;
  bodyTimeout: number;
  limitRequestBody: number;
  bufferChunkedBody: number;
  bodyMinRate: number;
  /** `MODULE[:THREADS]` each. */
  tasks: string[];
  taskThreads: number;
  taskTimeout: number;
  taskMaxQueue: number;
  taskGracefulTimeout: number;
  taskNice: number;
  taskIsolation: TaskIsolation;
}

/**
 * `--task-isolation`: task workers as threads of this process (the default: cheap, and ArrayBuffers move
 * without a copy) or as child processes (a native crash, such as a segfault in an addon, ends only that
 * process; arguments and results are copied).
 */
export const TASK_ISOLATIONS = ['thread', 'process'] as const;
export type TaskIsolation = (typeof TASK_ISOLATIONS)[number];
