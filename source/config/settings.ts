/**
 * The settings table: one row per setting drives the command line, the config file, GRAINBOWS_CMD_ARGS,
 * --print-config, docs/settings.md and `serve()`'s options (SERVE_SETTINGS). A row knows its flag, type,
 * default, how to validate a value and what to say about it; nothing else declares a default or validates.
 */
import { LOG_LEVELS } from '../../shared/log.js';
import { GrainbowsError } from '../../shared/errors.js';
import { parseBind } from '../accept/bind.js';
import { DEFAULT_ACCESS_LOG_FORMAT } from '../../shared/access-log.js';
import { checkAllowIps } from '../../shared/forwarded.js';
import { CERT_REQS, TLS_MIN_VERSIONS } from '../../shared/tls-options.js';
import {
  CONCURRENCY_MODELS,
  HANDOFF_CHOICES,
  HEADER_MAPS,
  HTTP2_CLEARTEXT,
  HTTP_COMPAT_MODES,
  HTTP_PROTOCOLS,
  TASK_ISOLATIONS,
  type SettingsValues,
} from '../../shared/settings-values.js';

export { CONCURRENCY_MODELS, type ConcurrencyModel, type SettingsValues } from '../../shared/settings-values.js';

export interface SettingRow<K extends keyof SettingsValues = keyof SettingsValues> {
  name: K;
  flag: string;
  short?: string;
  type: 'string' | 'number' | 'boolean';
  /** An environment variable that sets it, above the default and below the config file (gunicorn's WEB_CONCURRENCY, FORWARDED_ALLOW_IPS). */
  env?: string;
  /** Other long flags for the same setting (gunicorn spells some two ways). */
  aliases?: string[];
  multiple?: boolean;
  default: SettingsValues[K];
  section: 'Server socket' | 'Actors' | 'Tasks' | 'HTTP/2' | 'Security' | 'Memory' | 'Logging' | 'Process' | 'Debugging';
  doc: string;
  /** Turns one raw flag value into the setting's value (an element, for repeatable ones); throws a message naming the problem. */
  parse(raw: string): unknown;
}

function wholeNumber(flag: string, min: number) {
  return (raw: string): number => {
    if (!/^\d+$/.test(raw.trim()) || Number(raw) < min) throw new Error(`--${flag} must be a whole number ≥ ${min}, not '${raw}'`);
    return Number(raw);
  };
}

/** An address spelled as --bind spells it, of one of `kinds`, or '' for off. */
function optionalAddress(flag: string, kinds: ReadonlyArray<'tcp' | 'unix'>) {
  const spelled = kinds.map((kind) => (kind === 'tcp' ? 'HOST:PORT' : 'unix:PATH')).join(' or ');
  return (raw: string): string => {
    if (raw === '') return raw;
    const { kind } = parseBind(raw);
    if (!(kinds as readonly string[]).includes(kind)) throw new Error(`--${flag} takes ${spelled}, not '${raw}'`);
    return raw;
  };
}

/** Peers as IPs or CIDR networks, comma-separated, or `*`. */
function peerList(flag: string) {
  return (raw: string): string => {
    const problem = checkAllowIps(raw);
    if (problem) throw new Error(`--${flag}: ${problem}`);
    return raw;
  };
}

/** A comma-separated list of `choices`, each at most once, in the order given (`--http-protocols h2,h1`). */
function listOf<T extends string>(flag: string, choices: readonly T[]) {
  return (raw: string): string => {
    const items = raw.split(',').map((item) => item.trim());
    for (const item of items)
      if (!(choices as readonly string[]).includes(item)) throw new Error(`--${flag} takes ${choices.join(', ')}, comma-separated, not '${raw}'`);
    if (new Set(items).size !== items.length) throw new Error(`--${flag} names a protocol twice: '${raw}'`);
    return items.join(',');
  };
}

function wholeNumberIn(flag: string, min: number, max: number) {
  const atLeast = wholeNumber(flag, min);
  return (raw: string): number => {
    const value = atLeast(raw);
    if (value > max) throw new Error(`--${flag} must be a whole number from ${min} to ${max}, not '${raw}'`);
    return value;
  };
}

function oneOf<T extends string>(flag: string, choices: readonly T[]) {
  return (raw: string): T => {
    if (!(choices as readonly string[]).includes(raw)) throw new Error(`--${flag} must be one of ${choices.join(', ')}, not '${raw}'`);
    return raw as T;
  };
}

/** A switch (`--flag`, `--flag=true|false`): the rows differ only in name, default, section and text. */
function switchRow<K extends keyof SettingsValues>(
  name: K,
  flag: string,
  defaultValue: SettingsValues[K],
  section: SettingRow<K>['section'],
  doc: string,
  short?: string,
): SettingRow<K> {
  return { name, flag, ...(short ? { short } : {}), type: 'boolean', default: defaultValue, section, doc, parse: parseBoolean(flag) };
}

export const SETTINGS = [
  {
    name: 'bind',
    flag: 'bind',
    short: 'b',
    type: 'string',
    multiple: true,
    default: ['127.0.0.1:8000'],
    section: 'Server socket',
    doc: 'Address to listen on: HOST:PORT, [IPv6]:PORT, unix:PATH or fd://N. Repeat for several.',
    parse: (raw: string) => {
      parseBind(raw);
      return raw;
    },
  },
  {
    name: 'backlog',
    flag: 'backlog',
    type: 'number',
    default: 2048,
    section: 'Server socket',
    doc: 'Most connections waiting in the kernel to be accepted.',
    parse: wholeNumber('backlog', 1),
  },
  {
    name: 'use',
    flag: 'use',
    type: 'string',
    default: 'coroutine',
    section: 'Actors',
    doc: 'Concurrency model: coroutine (many requests per actor, up to worker-connections) or sync (one request per actor at a time, each connection closed after its response, the rest wait in the main thread: for apps that block).',
    parse: oneOf('use', CONCURRENCY_MODELS),
  },
  {
    name: 'workers',
    flag: 'workers',
    short: 'w',
    env: 'WEB_CONCURRENCY',
    type: 'number',
    default: 1,
    section: 'Actors',
    doc: 'Number of actors (worker threads), each serving many connections. An actor multiplexes sleeping requests, so more actors help CPU-bound apps and spread slow clients. With the relay hand-off the main thread needs a core too: one actor fewer than cores (on 2 cores, 1 actor answered probes faster than 2 under a slow-client attack); with transfer main only accepts: one actor per core.',
    parse: wholeNumber('workers', 1),
  },
  {
    name: 'workerConnections',
    flag: 'worker-connections',
    type: 'number',
    default: 1000,
    section: 'Actors',
    doc: 'Most requests one actor answers at once; past it, new connections wait in the main thread. Idle keep-alive connections and connections still sending their first request head do not count.',
    parse: wholeNumber('worker-connections', 1),
  },
  {
    name: 'handoff',
    flag: 'handoff',
    type: 'string',
    default: 'auto',
    section: 'Actors',
    doc: 'How connections reach actors: transfer (the actor owns the socket: moved on Node 24+, a dup(2)ed descriptor on Node 20 and 22 on Unix, through the optional koffi package), relay (main keeps the socket and relays its bytes; the only way on Windows before Node 24, and for TLS), auto (transfer where possible).',
    parse: oneOf('handoff', HANDOFF_CHOICES),
  },
  switchRow(
    'stickySessions',
    'sticky-sessions',
    false,
    'Actors',
    "Send every connection whose first request names a session made by an actor (socket.io long-polling with grainbows/socket.io's adapter) to that actor, as node:cluster's sticky sessions do. Main reads each new connection's first request head to decide.",
  ),
  {
    name: 'keepAlive',
    flag: 'keep-alive',
    type: 'number',
    default: 75,
    section: 'Actors',
    doc: "Seconds an idle keep-alive connection stays open (above load balancers' 60 s).",
    parse: wholeNumber('keep-alive', 0),
  },
  {
    name: 'tasks',
    flag: 'tasks',
    aliases: ['dirty-app'],
    type: 'string',
    multiple: true,
    default: [],
    section: 'Tasks',
    doc: "A task module, MODULE[:THREADS]: its exported functions run on a pool of threads of their own beside the actors, called from the app with runTask and streamTask (grainbows/tasks), so heavy or blocking work does not freeze the actor's other requests. Each thread imports the module once: what it keeps at its top level (a model, a cache) lives as long as the thread. Repeat for several; gunicorn's --dirty-app.",
    parse: parseTaskModule,
  },
  {
    name: 'taskThreads',
    flag: 'task-threads',
    aliases: ['dirty-workers'],
    type: 'number',
    default: 0,
    section: 'Tasks',
    doc: 'Threads for a task module given without :THREADS; 0 = one per core. They run at a lower OS priority (--task-nice), so they take the cores the actors leave idle.',
    parse: wholeNumber('task-threads', 0),
  },
  {
    name: 'taskTimeout',
    flag: 'task-timeout',
    aliases: ['dirty-timeout'],
    type: 'number',
    default: 300,
    section: 'Tasks',
    doc: "Seconds a call may keep its caller waiting (for its result, or for a generator's next value) before its thread is ended and replaced; the caller gets E_TASK_TIMEOUT. 0 = no limit.",
    parse: wholeNumber('task-timeout', 0),
  },
  {
    name: 'taskMaxQueue',
    flag: 'task-max-queue',
    type: 'number',
    default: 0,
    section: 'Tasks',
    doc: 'Calls that may wait for a thread, per task module; calls beyond it are refused at once with E_TASK_QUEUE_FULL (an app answers 503). 0 = no limit.',
    parse: wholeNumber('task-max-queue', 0),
  },
  {
    name: 'taskGracefulTimeout',
    flag: 'task-graceful-timeout',
    aliases: ['dirty-graceful-timeout'],
    type: 'number',
    default: 30,
    section: 'Tasks',
    doc: 'Seconds running calls get to finish when the server stops or a reload replaces the task threads; what still runs then ends with E_TASK_POOL_CLOSED.',
    parse: wholeNumber('task-graceful-timeout', 0),
  },
  {
    name: 'taskNice',
    flag: 'task-nice',
    type: 'number',
    default: 10,
    section: 'Tasks',
    doc: "How much lower the task threads' OS priority is than the actors' (a nice increment, 0 to 19; Linux sets it per thread): the kernel runs light requests first and heavy work in the time left. 0 = the same priority.",
    parse: wholeNumberIn('task-nice', 0, 19),
  },
  {
    name: 'taskIsolation',
    flag: 'task-isolation',
    type: 'string',
    default: 'thread',
    section: 'Tasks',
    doc: 'What a task worker is: `thread` (threads of this process; ArrayBuffers move without a copy) or `process` (child processes: a native crash, such as a segfault in an addon, ends only that process and its call; arguments and results are copied). A thread that crashes natively takes the whole server with it.',
    parse: oneOf('task-isolation', TASK_ISOLATIONS),
  },
  {
    name: 'httpProtocols',
    flag: 'http-protocols',
    type: 'string',
    default: 'h1',
    section: 'HTTP/2',
    doc: "The HTTP versions HTTPS offers by ALPN, most preferred first: `h1`, `h2`, `h2,h1` (gunicorn's names). HTTP/2 is served over TLS; each stream is a request, counted, limited and logged as an HTTP/1.1 request is. An app that cannot speak HTTP/2 keeps `h1`.",
    parse: listOf('http-protocols', HTTP_PROTOCOLS),
  },
  {
    name: 'http2MaxConcurrentStreams',
    flag: 'http2-max-concurrent-streams',
    type: 'number',
    default: 100,
    section: 'HTTP/2',
    doc: 'Most streams one HTTP/2 connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); a stream past it is refused with RST_STREAM REFUSED_STREAM.',
    parse: wholeNumberIn('http2-max-concurrent-streams', 1, 2 ** 31 - 1),
  },
  {
    name: 'http2InitialWindowSize',
    flag: 'http2-initial-window-size',
    type: 'number',
    default: 65535,
    section: 'HTTP/2',
    doc: "Bytes of a stream's request body a client may send before the server asks for more (SETTINGS_INITIAL_WINDOW_SIZE).",
    parse: wholeNumberIn('http2-initial-window-size', 0, 2 ** 31 - 1),
  },
  {
    name: 'http2MaxFrameSize',
    flag: 'http2-max-frame-size',
    type: 'number',
    default: 16384,
    section: 'HTTP/2',
    doc: 'Largest frame payload the server accepts, in bytes (SETTINGS_MAX_FRAME_SIZE, 16384 to 16777215).',
    parse: wholeNumberIn('http2-max-frame-size', 16384, 16777215),
  },
  {
    name: 'http2MaxHeaderListSize',
    flag: 'http2-max-header-list-size',
    type: 'number',
    default: 65536,
    section: 'HTTP/2',
    doc: 'Largest request header list, in bytes as HPACK counts them (SETTINGS_MAX_HEADER_LIST_SIZE); the per-field limits of --limit-request-fields and --limit-request-field-size apply too, as for HTTP/1.1.',
    parse: wholeNumberIn('http2-max-header-list-size', 1, 2 ** 31 - 1),
  },
  {
    name: 'http2Cleartext',
    flag: 'http2-cleartext',
    type: 'string',
    default: 'off',
    section: 'HTTP/2',
    doc: "Cleartext HTTP/2 (h2c) on plain listeners, for a trusted proxy in front (HAProxy's `proto h2`, Envoy): `prior-knowledge` serves a connection that opens with HTTP/2's preface as HTTP/2; `upgrade` switches an HTTP/1.1 request that asks `Upgrade: h2c` (RFC 7540 §3.2) to HTTP/2, answering it as the connection's first stream (one with a body is answered over HTTP/1.1); `both` does both. Only peers in --forwarded-allow-ips get it; everyone else gets HTTP/1.x, as if it were off.",
    parse: oneOf('http2-cleartext', HTTP2_CLEARTEXT),
  },
  {
    name: 'timeout',
    flag: 'timeout',
    short: 't',
    type: 'number',
    default: 30,
    section: 'Actors',
    doc: 'Actor liveness: an actor whose event loop has not turned for this many seconds is terminated and replaced; its waiting requests get 503. 0 = never.',
    parse: wholeNumber('timeout', 0),
  },
  {
    name: 'requestTimeout',
    flag: 'request-timeout',
    type: 'number',
    default: 0,
    section: 'Actors',
    doc: "Seconds from a request's head to its response's head: past it the client gets 504, a Fetch app's request.signal aborts and a listener app's request closes. A response already streaming is not cut. 0 = off.",
    parse: wholeNumber('request-timeout', 0),
  },
  {
    name: 'gracefulTimeout',
    flag: 'graceful-timeout',
    type: 'number',
    default: 30,
    section: 'Actors',
    doc: 'Seconds a draining actor (reload, resize, recycling, TERM) gets to finish its requests before its connections are closed.',
    parse: wholeNumber('graceful-timeout', 0),
  },
  {
    name: 'maxRequests',
    flag: 'max-requests',
    type: 'number',
    default: 0,
    section: 'Actors',
    doc: 'Replace an actor after it has served this many requests (a fresh one starts first, the old one drains). 0 = never.',
    parse: wholeNumber('max-requests', 0),
  },
  {
    name: 'maxRequestsJitter',
    flag: 'max-requests-jitter',
    type: 'number',
    default: 0,
    section: 'Actors',
    doc: "Adds a random 0..N to each actor's max-requests, so actors do not all recycle at once.",
    parse: wholeNumber('max-requests-jitter', 0),
  },
  {
    name: 'limitRequestLine',
    flag: 'limit-request-line',
    type: 'number',
    default: 4094,
    section: 'Security',
    doc: 'Longest request line in bytes; longer is answered 414. 0 = no limit.',
    parse: wholeNumber('limit-request-line', 0),
  },
  {
    name: 'limitRequestFields',
    flag: 'limit-request-fields',
    type: 'number',
    default: 100,
    section: 'Security',
    doc: 'Most header fields in a request; more is answered 431. 0 = no limit.',
    parse: wholeNumber('limit-request-fields', 0),
  },
  {
    name: 'limitRequestFieldSize',
    flag: 'limit-request-field-size',
    type: 'number',
    default: 8190,
    section: 'Security',
    doc: 'Longest header field (name, value, CRLF) in bytes; longer is answered 431. 0 = the default.',
    parse: wholeNumber('limit-request-field-size', 0),
  },
  {
    name: 'limitRequestBody',
    flag: 'limit-request-body',
    type: 'number',
    default: 0,
    section: 'Security',
    doc: 'Most bytes of request body; a larger Content-Length is answered 413 before the app runs, a chunked body is counted as it arrives and cut at the limit (413). 0 = no limit (uploads of any size).',
    parse: wholeNumber('limit-request-body', 0),
  },
  {
    name: 'bufferChunkedBody',
    flag: 'buffer-chunked-body',
    type: 'number',
    default: 0,
    section: 'Security',
    doc: 'Read a chunked request body whole, up to this many bytes (413 beyond), and give it to the app with a Content-Length and no Transfer-Encoding, for frameworks that take a body without a length for none. 0 = off: bodies stream as they arrive.',
    parse: wholeNumber('buffer-chunked-body', 0),
  },
  {
    name: 'headerTimeout',
    flag: 'header-timeout',
    type: 'number',
    default: 20,
    section: 'Security',
    doc: 'Seconds a client gets to send a whole request head; 408 and close beyond (slow-header attacks).',
    parse: wholeNumber('header-timeout', 1),
  },
  {
    name: 'bodyTimeout',
    flag: 'body-timeout',
    type: 'number',
    default: 300,
    section: 'Security',
    doc: 'Seconds a client gets to send a whole request, head and body; 408 beyond. 0 = no limit (for very slow uploads).',
    parse: wholeNumber('body-timeout', 0),
  },
  {
    name: 'bodyMinRate',
    flag: 'body-min-rate',
    type: 'number',
    default: 100,
    section: 'Security',
    doc: 'Uploads arriving slower than this many bytes a second, over 10 s windows in which the app was waiting for the body, are answered 408 and closed (slow-body attacks). 0 = off.',
    parse: wholeNumber('body-min-rate', 0),
  },
  {
    name: 'headerMap',
    flag: 'header-map',
    type: 'string',
    default: 'drop',
    section: 'Security',
    doc: "Header names with '_': drop them, refuse the request (400), or pass them through (dangerous).",
    parse: oneOf('header-map', HEADER_MAPS),
  },
  {
    name: 'httpCompat',
    flag: 'http-compat',
    type: 'string',
    default: 'node',
    section: 'Security',
    doc: "node: Node's HTTP parser alone judges requests. gunicorn: a framer in front of it also accepts what gunicorn's parser accepts by default and Node's refuses (methods Node does not know, as upper-case tokens; raw non-ASCII bytes in the target; Transfer-Encoding: identity; whitespace in chunk extensions), and the app sees them as sent. It stops rewriting a connection at the first framing it does not follow plainly, so it cannot change where a message ends. Costs the transfer hand-off its native read path.",
    parse: oneOf('http-compat', HTTP_COMPAT_MODES),
  },
  switchRow(
    'permitObsoleteFolding',
    'permit-obsolete-folding',
    false,
    'Security',
    'Accept obs-fold header continuation lines (RFC 9112 §5.2) and join them with one space; the folded field counts against --limit-request-field-size. Off: refused 400.',
  ),
  switchRow(
    'stripHeaderSpaces',
    'strip-header-spaces',
    false,
    'Security',
    'Remove whitespace between a header name and its colon instead of refusing the request (400). Dangerous behind a proxy that reads such a field differently.',
  ),
  switchRow(
    'permitUnconventionalHttpMethod',
    'permit-unconventional-http-method',
    false,
    'Security',
    'Accept any token as a method, lower-case and short ones too; the app sees it as sent. Off: a method Node does not know is refused 400 (with --http-compat gunicorn: unless it is an upper-case token of 3-20 characters).',
  ),
  switchRow('casefoldHttpMethod', 'casefold-http-method', false, 'Security', 'Upper-case the method before judging it and before the app sees it.'),
  {
    name: 'forwardedAllowIps',
    flag: 'forwarded-allow-ips',
    env: 'FORWARDED_ALLOW_IPS',
    type: 'string',
    default: '127.0.0.1,::1',
    section: 'Security',
    doc: "Peers (IPs or CIDR networks, comma-separated, or '*') whose X-Forwarded-For/-Proto/-Host/-Port/-Ssl, X-Real-IP and Forwarded headers reach the app; from other peers they are removed. A trusted HTTPS proto makes a Fetch app's request.url https. Peers on a unix socket are always trusted, as in gunicorn: the socket file's permissions (--umask) decide who may connect.",
    parse: peerList('forwarded-allow-ips'),
  },
  switchRow(
    'proxyProtocol',
    'proxy-protocol',
    false,
    'Security',
    'Read a PROXY protocol header (HAProxy v1 text or v2 binary) at the start of connections from --proxy-allow-from peers: the app sees the client it names as the remote address. Connections without one are served as they are; a malformed one is answered 400.',
  ),
  {
    name: 'proxyAllowFrom',
    flag: 'proxy-allow-from',
    type: 'string',
    default: '127.0.0.1,::1',
    section: 'Security',
    doc: "Peers (IPs or CIDR networks, comma-separated, or '*') allowed to send a PROXY header; one from anybody else is answered 403.",
    parse: peerList('proxy-allow-from'),
  },
  {
    name: 'certfile',
    flag: 'certfile',
    type: 'string',
    default: '',
    section: 'Security',
    doc: 'HTTPS: certificate chain (PEM). With --keyfile every listener speaks TLS. The actors end it on the sockets they own wherever the transfer hand-off moves sockets unread; main ends it with the relay, --proxy-protocol or --sticky-sessions (the start-up log says which). Every TLS file is read again on reload (HUP, `ctl reload`); a bad new one keeps the old.',
    parse: (raw: string) => raw,
  },
  {
    name: 'keyfile',
    flag: 'keyfile',
    type: 'string',
    default: '',
    section: 'Security',
    doc: 'HTTPS: private key (PEM) of --certfile.',
    parse: (raw: string) => raw,
  },
  {
    name: 'caCerts',
    flag: 'ca-certs',
    type: 'string',
    default: '',
    section: 'Security',
    doc: "HTTPS: CA certificates (PEM) that client certificates are verified against (with --cert-reqs); '' = Node's bundled roots.",
    parse: (raw: string) => raw,
  },
  {
    name: 'certReqs',
    flag: 'cert-reqs',
    type: 'string',
    default: 'none',
    section: 'Security',
    doc: "HTTPS client certificates: `none` (not asked for), `optional` (asked for; the app reads `req.socket.authorized` and `getPeerCertificate()`), `required` (a client without a certificate that verifies against --ca-certs fails the handshake). gunicorn's 0, 1, 2 mean the same.",
    parse: (raw: string) => oneOf('cert-reqs', CERT_REQS)(CERT_REQS[Number(raw)] ?? raw),
  },
  {
    name: 'ciphers',
    flag: 'ciphers',
    type: 'string',
    default: '',
    section: 'Security',
    doc: "HTTPS: the TLS 1.2 cipher suites offered, in OpenSSL's cipher list syntax; '' = Node's default list.",
    parse: (raw: string) => raw,
  },
  {
    name: 'tlsMinVersion',
    flag: 'tls-min-version',
    type: 'string',
    default: 'TLSv1.2',
    section: 'Security',
    doc: 'HTTPS: the oldest TLS version a client may use (TLSv1.2 or TLSv1.3).',
    parse: oneOf('tls-min-version', TLS_MIN_VERSIONS),
  },
  {
    name: 'heapGrowingPercent',
    flag: 'heap-growing-percent',
    type: 'number',
    default: 20,
    section: 'Memory',
    doc: "How much V8 lets the old generation grow after a major GC, in percent (V8's own default grows up to 100%). Lower holds less memory under many long-lived connections, at no throughput cost (docs/performance.md, Tuning). 0 = V8's default.",
    parse: wholeNumber('heap-growing-percent', 0),
  },
  switchRow(
    'memoryReducer',
    'memory-reducer',
    false,
    'Memory',
    "Let V8's memory reducer run. Off by default: once a burst of traffic is over it compacts the heap, pausing the thread in the middle of the next requests (every connection, when it is the main thread's). Off means the actors start without it and the CLI starts node with --no-memory-reducer (Node reads that flag only at start-up: in place where Node has process.execve, else as a child of the grainbows command). On: heaps shrink sooner after a burst (with --main-semi-space-size 0 and --malloc-arenas 0 too: no relaunch, no second process on Node 20).",
  ),
  {
    name: 'heapTrimAfter',
    flag: 'heap-trim-after',
    type: 'number',
    default: 10,
    section: 'Memory',
    doc: "Seconds with no request in flight and none answered after which a thread gives back the young generation its last burst (or its boot) grew: full collections of its heap and a scavenge, a few ms, once per quiet stretch, in each actor and in main (docs/performance.md, Memory). V8's memory reducer does the same at moments of its own choosing; it is off unless --memory-reducer, and then this is not needed. 0 = never.",
    parse: wholeNumber('heap-trim-after', 0),
  },
  {
    name: 'mainSemiSpaceSize',
    flag: 'main-semi-space-size',
    type: 'number',
    default: 2,
    section: 'Memory',
    doc: "The main thread's young-generation semi-spaces, in MB (node's --max-semi-space-size; V8's default is 16). Main holds every connection, so its scavenges pause all of them: 2 keeps them short (docs/performance.md, Tuning). Main's only: the actors keep V8's 16 MB (serve()'s resourceLimits). Like --memory-reducer it is applied by starting node with it; a --max-semi-space-size given to node itself wins. 0 = V8's default.",
    parse: wholeNumber('main-semi-space-size', 0),
  },
  {
    name: 'mallocArenas',
    flag: 'malloc-arenas',
    type: 'number',
    default: 2,
    section: 'Memory',
    doc: "glibc's malloc arenas for the whole process (MALLOC_ARENA_MAX; glibc's default is 8 per core). Every thread that allocates while another holds an arena gets one of its own, and each keeps the memory it touched: with the actors, their task threads and Node's helper threads all in one process, 2 holds 6–8 MB less with -w 4 at no cost in CPU per request (docs/performance.md, Memory). Linux only. Like --memory-reducer it is applied by starting node with it set; a MALLOC_ARENA_MAX in grainbows' own environment wins. 0 = glibc's default.",
    parse: wholeNumber('malloc-arenas', 0),
  },
  {
    name: 'logLevel',
    flag: 'log-level',
    type: 'string',
    default: 'info',
    section: 'Logging',
    doc: `Error log level: ${LOG_LEVELS.join(', ')}.`,
    parse: oneOf('log-level', LOG_LEVELS),
  },
  {
    name: 'accessLogfile',
    flag: 'access-logfile',
    type: 'string',
    default: '',
    section: 'Logging',
    doc: "Access log: a file to append to, or '-' for stdout. Empty: no access log.",
    parse: (raw: string) => raw,
  },
  {
    name: 'accessLogformat',
    flag: 'access-logformat',
    type: 'string',
    default: DEFAULT_ACCESS_LOG_FORMAT,
    section: 'Logging',
    doc: "Access log format: gunicorn's atoms (%(h)s remote address, %(l)s '-', %(u)s user, %(t)s time, %(r)s request line, %(m)s method, %(U)s path, %(q)s query, %(H)s protocol, %(s)s status, %(b)s body bytes, %(f)s referer, %(a)s user agent, %(T)s/%(D)s/%(L)s duration in s/µs/decimal s, %(p)s pid, %({Header}i)s and %({Header}o)s), or json for one JSON object per line.",
    parse: (raw: string) => raw,
  },
  {
    name: 'metricsBind',
    flag: 'metrics-bind',
    type: 'string',
    default: '',
    section: 'Logging',
    doc: "Serve Prometheus metrics at HOST:PORT or unix:PATH: GET /metrics, and GET /healthz for readiness (200 while serving, 503 while starting or stopping). Apart from the app's binds. Empty: off.",
    parse: optionalAddress('metrics-bind', ['tcp', 'unix']),
  },
  {
    name: 'statsdHost',
    flag: 'statsd-host',
    type: 'string',
    default: '',
    section: 'Logging',
    doc: "Send gunicorn's StatsD metrics over UDP to HOST:PORT (gunicorn.requests, gunicorn.request.duration, gunicorn.request.status.<code>, gunicorn.workers, gunicorn.log.<level>). Empty: off.",
    parse: optionalAddress('statsd-host', ['tcp']),
  },
  {
    name: 'statsdPrefix',
    flag: 'statsd-prefix',
    type: 'string',
    default: '',
    section: 'Logging',
    doc: "Prefix for the StatsD metric names, joined with a dot (gunicorn's statsd_prefix): --statsd-prefix app gives app.gunicorn.requests.",
    parse: (raw: string) => raw,
  },
  {
    name: 'errorLogfile',
    flag: 'error-logfile',
    type: 'string',
    default: '-',
    section: 'Logging',
    doc: "Error log: a file to append to (reopened on USR1), or '-' for stderr (gunicorn's meaning).",
    parse: (raw: string) => raw,
  },
  {
    name: 'logFile',
    flag: 'log-file',
    type: 'string',
    default: '',
    section: 'Logging',
    doc: "The original grainbows flag for the error log: a file, or '-' for stdout (its meaning there). When given, it wins over --error-logfile.",
    parse: (raw: string) => raw,
  },
  {
    name: 'pidfile',
    flag: 'pid',
    short: 'p',
    type: 'string',
    default: '',
    section: 'Process',
    doc: 'Write the process id to this file once serving; removed on exit. POSIX and Windows.',
    parse: (raw: string) => raw,
  },
  {
    name: 'controlSocket',
    flag: 'control-socket',
    type: 'string',
    default: '',
    section: 'Process',
    doc: 'Where grainbows ctl reaches this server. Empty: <tmpdir>/grainbows-<uid>/<pid>.sock (owner only), or the named pipe \\\\.\\pipe\\grainbows-<pid> on Windows.',
    parse: (raw: string) => raw,
  },
  {
    name: 'procName',
    flag: 'name',
    short: 'n',
    type: 'string',
    default: '',
    section: 'Process',
    doc: "Process title shown by ps (default 'grainbows'; 'grainbows: NAME' when given).",
    parse: (raw: string) => raw,
  },
  {
    name: 'umask',
    flag: 'umask',
    short: 'm',
    type: 'number',
    default: 0,
    section: 'Process',
    doc: 'File mode creation mask of the process (octal as 0o22 or 022, or decimal); unix-socket binds get mode 0o777 without these bits, as in gunicorn, so with the default 0 a front proxy running as another user can connect. POSIX only.',
    parse: parseUmask,
  },
  {
    name: 'chdir',
    flag: 'chdir',
    type: 'string',
    default: '',
    section: 'Process',
    doc: 'Change to this directory before loading the app (relative app paths resolve from it).',
    parse: (raw: string) => raw,
  },
  {
    name: 'rawEnv',
    flag: 'env',
    short: 'e',
    type: 'string',
    multiple: true,
    default: [],
    section: 'Process',
    doc: 'Set an environment variable for the app: KEY=VALUE. Repeat for several.',
    parse: parseEnvAssignment,
  },
  {
    name: 'user',
    flag: 'user',
    short: 'u',
    type: 'string',
    default: '',
    section: 'Process',
    doc: 'Switch to this user (name or uid) after binding, before loading the app. POSIX only; needs root.',
    parse: (raw: string) => raw,
  },
  {
    name: 'group',
    flag: 'group',
    short: 'g',
    type: 'string',
    default: '',
    section: 'Process',
    doc: 'Switch to this group (name or gid) after binding, before loading the app. POSIX only; needs root.',
    parse: (raw: string) => raw,
  },
  switchRow(
    'reload',
    'reload',
    false,
    'Debugging',
    "Reload when the app's code changes: its directory tree (without node_modules and dot-directories), the config file and --reload-extra-file. A fresh generation of actors imports everything anew; in-flight requests finish first.",
  ),
  {
    name: 'reloadExtraFile',
    flag: 'reload-extra-file',
    type: 'string',
    multiple: true,
    default: [],
    section: 'Debugging',
    doc: 'A file or directory also watched by --reload, whatever its extension (templates, .env). Repeat for several.',
    parse: (raw: string) => raw,
  },
  switchRow(
    'debug',
    'debug',
    false,
    'Debugging',
    'Development mode: one actor, log level debug, reload on code change (overrides --workers, --log-level and --reload).',
    'd',
  ),
  switchRow('daemon', 'daemon', false, 'Process', 'Detach from the terminal and run in the background (use with --pid and --error-logfile). POSIX only.', 'D'),
] as const satisfies ReadonlyArray<SettingRow<keyof SettingsValues>>;

/** `MODULE[:THREADS]`: the file is checked when the pool starts (E_TASK_LOAD), the count here. */
function parseTaskModule(raw: string): string {
  const text = raw.trim();
  if (text === '' || /^:\d*$/.test(text)) throw new Error(`--tasks takes MODULE[:THREADS], e.g. tasks.js:2, not '${raw}'`);
  if (/:0+$/.test(text)) throw new Error(`--tasks ${raw}: a task module needs at least 1 thread`);
  return text;
}

function parseUmask(raw: string): number {
  const text = raw.trim();
  const value = /^0o[0-7]+$/i.test(text) ? parseInt(text.slice(2), 8) : /^0[0-7]+$/.test(text) ? parseInt(text, 8) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isInteger(value) || value < 0 || value > 0o777) throw new Error(`--umask must be a mode like 0o22, 022 or 18, not '${raw}'`);
  return value;
}

function parseEnvAssignment(raw: string): string {
  if (!/^[A-Za-z_][A-Za-z0-9_]*=/.test(raw)) throw new Error(`--env must be KEY=VALUE, not '${raw}'`);
  return raw;
}

function parseBoolean(flag: string) {
  return (raw: string): boolean => {
    if (raw === 'true' || raw === '') return true;
    if (raw === 'false') return false;
    throw new Error(`--${flag} is a switch (true or false), not '${raw}'`);
  };
}

export type SettingName = keyof SettingsValues;

/** `workerConnections` → `worker_connections`: the config-file spelling, as in gunicorn. */
export function configKey(name: string): string {
  return name.replace(/[A-Z]/g, (letter) => `_${letter.toLowerCase()}`);
}

/** A setting by name, config key, or a config key spelled after one of its flag aliases (`dirty_timeout`). */
export function findSetting(key: string): SettingRow | undefined {
  return (SETTINGS as ReadonlyArray<SettingRow>).find(
    (row) => row.name === key || configKey(row.name) === key || (row.aliases ?? []).some((alias) => alias.replace(/-/g, '_') === key),
  );
}

/** Validates one value for a row, from a flag (string) or a config file (any JS value). */
export function parseSettingValue(row: SettingRow, value: unknown): unknown {
  if (row.multiple) {
    const items = Array.isArray(value) ? value : [value];
    return items.map((item) => row.parse(String(item)));
  }
  if (Array.isArray(value)) throw new Error(`--${row.flag} takes one value, not a list`);
  return row.parse(String(value));
}

export function defaultSettings(): SettingsValues {
  const values: Record<string, unknown> = {};
  for (const row of SETTINGS) values[row.name] = Array.isArray(row.default) ? [...row.default] : row.default;
  return values as unknown as SettingsValues;
}

/**
 * The settings `serve()` reads, each a row above: the library takes them as options of the same name and
 * type, with the same defaults and validation as the command line. The other rows are the command's own
 * (process, daemon, logging to files, reload on change).
 */
export const SERVE_SETTINGS = [
  'bind',
  'backlog',
  'use',
  'workers',
  'workerConnections',
  'handoff',
  'stickySessions',
  'keepAlive',
  'timeout',
  'requestTimeout',
  'gracefulTimeout',
  'maxRequests',
  'maxRequestsJitter',
  'limitRequestLine',
  'limitRequestFields',
  'limitRequestFieldSize',
  'limitRequestBody',
  'bufferChunkedBody',
  'headerTimeout',
  'bodyTimeout',
  'bodyMinRate',
  'headerMap',
  'httpCompat',
  'permitObsoleteFolding',
  'stripHeaderSpaces',
  'permitUnconventionalHttpMethod',
  'casefoldHttpMethod',
  'forwardedAllowIps',
  'proxyProtocol',
  'proxyAllowFrom',
  'certfile',
  'keyfile',
  'httpProtocols',
  'http2MaxConcurrentStreams',
  'http2InitialWindowSize',
  'http2MaxFrameSize',
  'http2MaxHeaderListSize',
  'http2Cleartext',
  'caCerts',
  'certReqs',
  'ciphers',
  'tlsMinVersion',
  'heapGrowingPercent',
  'memoryReducer',
  'heapTrimAfter',
  'tasks',
  'taskThreads',
  'taskTimeout',
  'taskMaxQueue',
  'taskGracefulTimeout',
  'taskNice',
  'taskIsolation',
  'logLevel',
  'accessLogfile',
  'accessLogformat',
  'metricsBind',
  'statsdHost',
  'statsdPrefix',
  'umask',
] as const satisfies ReadonlyArray<SettingName>;

export type ServeSettingName = (typeof SERVE_SETTINGS)[number];
export type ServeSettings = Pick<SettingsValues, ServeSettingName>;

/**
 * Where a library's default differs from the command's: these settings change the whole process (V8 flags),
 * which the command may do and an embedding app must ask for.
 */
const LIBRARY_DEFAULTS: Partial<ServeSettings> = { heapGrowingPercent: 0, memoryReducer: true };

/**
 * `serve()`'s settings: each one given validated by its row, exactly as a flag or a config-file value is,
 * the rest from the row's default (or LIBRARY_DEFAULTS). Throws E_USAGE naming the option. `bind` is taken
 * as given: the library also accepts parsed addresses, which the listeners check.
 */
export function resolveServeSettings(options: Partial<Record<ServeSettingName, unknown>>): ServeSettings {
  const resolved: Record<string, unknown> = {};
  for (const name of SERVE_SETTINGS) {
    const row = findSetting(name) as SettingRow;
    const given = options[name];
    if (given === undefined) {
      const fallback = name in LIBRARY_DEFAULTS ? LIBRARY_DEFAULTS[name] : row.default;
      resolved[name] = Array.isArray(fallback) ? [...(fallback as unknown[])] : fallback;
    } else if (name === 'bind') {
      resolved[name] = given;
    } else {
      try {
        resolved[name] = parseSettingValue(row, given);
      } catch (error) {
        throw new GrainbowsError('E_USAGE', (error as Error).message.replace(/^--[\w-]+/, name));
      }
    }
  }
  const settings = resolved as unknown as ServeSettings;
  checkTogether(settings);
  return settings;
}

/** The rules that involve two settings; the command checks them too, through the same serve(). */
function checkTogether({ headerTimeout, bodyTimeout }: ServeSettings): void {
  if (bodyTimeout > 0 && bodyTimeout < headerTimeout)
    throw new GrainbowsError('E_USAGE', `body timeout (${bodyTimeout} s) must be at least the header timeout (${headerTimeout} s), or 0`);
}
