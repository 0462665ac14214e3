/**
 * The head gate: a new connection waits here until it has sent a whole request head. It runs in the main
 * thread for relayed connections, and in each actor for sockets the transfer hand-off moved there unread.
 * Only then does it cost Node's HTTP server anything, and only a request costs a slot (the deferred
 * hand-off; gunicorn's #3518 outage came from tying a worker to a connection that had not sent its request
 * yet). A client trickling its head, or connecting and saying nothing, holds a socket and a few bytes here,
 * and is answered 408 and closed once `--header-timeout` passes.
 *
 * The gate does not parse HTTP, it finds where the head ends (an empty line) and lets the actor's parser
 * (Node's) judge it. It checks one thing itself, the request line's shape (400), because Node's parser
 * tolerates extra spaces there. Bytes that the parser refuses at once (NUL, a bare CR) are handed on at once,
 * so malformed input is answered 400 by the same code as always, not 408 after the deadline. In main it
 * also reads the PROXY protocol header (`--proxy-protocol`), which comes before the head.
 */
import type { Socket } from 'node:net';
import { parseProxyHeader, type ClientAddress } from './proxy-protocol.js';
import { SLICE_GAP_MS, SliceBudget } from './shedding.js';

/**
 * A head longer than this is handed on unfinished: the actor's parser answers 431 (Node's own limit is
 * 16 KiB). Bounds what one waiting connection can make us hold.
 */
export const GATE_HEAD_LIMIT = 64 * 1024;
/** While stopping, a connection that has sent nothing gets this long before it is closed (a request may be in flight). */
const SILENT_GRACE_WHEN_STOPPING_MS = 2000;
/** How often deadlines are checked (Node checks its own header deadline every second too). */
const SWEEP_MS = 250;
/** A refused connection's answer gets this long to reach the client before the socket is destroyed. */
const CLOSE_GRACE_MS = 2000;
/**
 * Most connections one slice of a sweep refuses (slices SLICE_GAP_MS apart and at most SLICE_BUDGET_MS
 * long, shared/shedding.ts). A
 * slow-header attack opens its connections together, so their deadlines pass together: 4,000 of them made
 * sweeps of 250 refusals at once, 7-17 ms in which no other connection was accepted or read (measured
 * with a 1 ms loop-lag probe).
 */
const REFUSALS_PER_SLICE = 32;

export interface GateSettings {
  /** Milliseconds a new connection gets to send its whole head. */
  headerTimeoutMs: number;
  /** `--proxy-protocol` with `--proxy-allow-from`: which peers may send a PROXY header; null when off. */
  proxyFrom: ((address: string | undefined) => boolean) | null;
  /**
   * Hand a connection on as soon as its request line is checked, not its whole head. For sockets already
   * in an actor (the transfer hand-off): Node's parser reads the rest of a trickled head natively, far
   * cheaper than this gate's JavaScript per read, and enforces the same header deadline; a request still
   * takes a slot only once its head is complete.
   */
  releaseAfterRequestLine?: boolean;
}

/** A connection through the gate: its bytes so far (the head, perhaps more) and, via PROXY, its real client. */
export interface GatedConnection {
  socket: Socket;
  head: Buffer;
  client?: ClientAddress;
  /** The client half-closed already (its FIN was read here): nothing more will come from it. */
  ended?: boolean;
  /** Nothing was read from the socket: it goes to an actor untouched (the transfer hand-off), no request counted. */
  unread?: boolean;
}

interface Waiting {
  /** The bytes so far are `buffer[0, length)`; it grows by doubling, so a trickled head costs O(n) copying. */
  buffer: Buffer;
  length: number;
  /** The request line has been looked at. */
  lineChecked: boolean;
  since: number;
  /** Where to resume looking for the end of the head. */
  scanFrom: number;
  /** The PROXY header is read (or none is expected). */
  proxyRead: boolean;
  client?: ClientAddress;
  onData: (chunk: Buffer) => void;
  onEnd: () => void;
}

/** What a finished look at the bytes says: keep waiting, or hand on (a whole head, or bytes the parser will refuse). */
function headIsReady(bytes: Buffer, from: number): boolean | number {
  for (let at = bytes.indexOf(0x0a, from); at !== -1; at = bytes.indexOf(0x0a, at + 1)) {
    const next = bytes[at + 1];
    if (next === undefined) return at; // wait: resume here
    if (next === 0x0a) return true;
    if (next === 0x0d) {
      const after = bytes[at + 2];
      if (after === undefined) return at;
      if (after === 0x0a) return true;
    }
  }
  return false;
}

/**
 * Bytes Node's parser refuses as soon as it sees them (NUL, a CR not followed by LF): no reason to wait for
 * the rest. Looks at the bytes from `from` on (the ones before were looked at already).
 */
function refusedAtOnce(bytes: Buffer, from: number): boolean {
  if (bytes.indexOf(0, from) !== -1) return true;
  for (let at = bytes.indexOf(0x0d, Math.max(0, from - 1)); at !== -1; at = bytes.indexOf(0x0d, at + 1)) {
    const next = bytes[at + 1];
    if (next !== undefined && next !== 0x0a) return true;
  }
  return false;
}

/**
 * RFC 9112's request line: method SP request-target SP HTTP-version, one space each. Node's parser lets
 * several spaces pass (it collapses them), which proxies may read differently: a smuggling vector.
 */
const REQUEST_LINE = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+ [^ ]+ HTTP\/\d\.\d$/;

/** The request line (after any empty lines): undefined while incomplete, else whether it is well formed. */
function requestLineLooksRight(bytes: Buffer): boolean | undefined {
  let start = 0;
  while (bytes[start] === 0x0d || bytes[start] === 0x0a) start++;
  const end = bytes.indexOf(0x0a, start);
  if (end === -1) return undefined;
  const line = bytes.toString('latin1', start, bytes[end - 1] === 0x0d ? end - 1 : end);
  return REQUEST_LINE.test(line);
}

const EMPTY = Buffer.alloc(0);

/**
 * 'error' on a connection the gate has seen: 'close' follows. Left on after release, for main holds a
 * connection queued for an actor without listening itself. One function for every connection.
 */
const ignoreError = (): void => {};

/**
 * Appends `chunk` to the entry's bytes. The first chunk is kept as it is (the usual case: a whole head in
 * one read); it is exactly `length` long, so the next append copies it into a buffer of our own.
 */
function append(entry: Waiting, chunk: Buffer): Buffer {
  const needed = entry.length + chunk.length;
  if (entry.length === 0) {
    entry.buffer = chunk;
  } else {
    if (needed > entry.buffer.length) {
      const grown = Buffer.allocUnsafe(Math.max(needed, entry.buffer.length * 2, 1024));
      entry.buffer.copy(grown, 0, 0, entry.length);
      entry.buffer = grown;
    }
    chunk.copy(entry.buffer, entry.length);
  }
  entry.length = needed;
  return entry.buffer.subarray(0, needed);
}

export class HeadGate {
  private readonly waiting = new Map<Socket, Waiting>();
  private readonly sweeper: NodeJS.Timeout;
  /** Set while a sweep that had more to refuse than one turn allows waits for the next turn. */
  private sweepResumes: NodeJS.Timeout | null = null;
  private stopping = false;
  /**
   * A connection that closes at the gate leaves it. One function for all (Node calls it with the socket as
   * `this`), removed at release: a connection keeps nothing of the gate once it passed (a closure per
   * connection held its first head and entry, about 0.5 KB each, for as long as the connection lived).
   */
  private readonly leaveOnClose: (this: Socket) => void;

  constructor(
    private readonly settings: GateSettings,
    private readonly onArrival: (arrival: GatedConnection) => void,
  ) {
    this.sweeper = setInterval(() => this.sweep(), SWEEP_MS).unref();
    const waiting = this.waiting;
    this.leaveOnClose = function (this: Socket) {
      waiting.delete(this);
    };
  }

  /** Connections still sending their head. */
  get size(): number {
    return this.waiting.size;
  }

  admit(socket: Socket): void {
    const entry: Waiting = {
      buffer: EMPTY,
      length: 0,
      lineChecked: false,
      since: Date.now(),
      scanFrom: 0,
      proxyRead: !this.settings.proxyFrom,
      onData: (chunk) => this.onData(socket, entry, chunk),
      onEnd: () => this.onEnd(socket, entry),
    };
    this.waiting.set(socket, entry);
    socket.on('data', entry.onData);
    socket.on('end', entry.onEnd);
    socket.on('error', ignoreError);
    socket.on('close', this.leaveOnClose);
    socket.resume();
  }

  /** The server is stopping: heads that complete still go on (to draining actors); silent connections go. */
  stop(): void {
    this.stopping = true;
    this.sweep();
  }

  /** Closes every connection still at the gate. */
  close(): void {
    clearInterval(this.sweeper);
    if (this.sweepResumes) clearTimeout(this.sweepResumes);
    for (const socket of this.waiting.keys()) socket.destroy();
    this.waiting.clear();
  }

  private onData(socket: Socket, entry: Waiting, chunk: Buffer): void {
    const checkedUpTo = entry.length;
    let bytes = append(entry, chunk);
    if (!entry.proxyRead) {
      const proxy = this.readProxyHeader(socket, bytes);
      if (proxy === 'wait' || proxy === 'refused') return;
      entry.proxyRead = true;
      entry.client = proxy.client;
      bytes = bytes.subarray(proxy.length);
      entry.buffer = bytes;
      entry.length = bytes.length;
      if (bytes.length === 0) return;
      return this.look(socket, entry, bytes, 0);
    }
    this.look(socket, entry, bytes, checkedUpTo);
  }

  /** Hands the connection on if its head is whole (or will be refused anyway); else waits for more. */
  private look(socket: Socket, entry: Waiting, bytes: Buffer, newFrom: number): void {
    if (!entry.lineChecked) {
      const lineRight = requestLineLooksRight(bytes);
      if (lineRight !== undefined) entry.lineChecked = true;
      if (lineRight === false) {
        this.refuse(socket, 400, 'Bad Request', 'malformed request line');
        return;
      }
      if (lineRight === true && this.settings.releaseAfterRequestLine) {
        this.release(socket, entry, bytes);
        return;
      }
    }
    const ready = headIsReady(bytes, entry.scanFrom);
    if (ready === true || entry.length > GATE_HEAD_LIMIT || refusedAtOnce(bytes, newFrom)) {
      this.release(socket, entry, bytes);
      return;
    }
    entry.scanFrom = typeof ready === 'number' ? ready : bytes.length;
  }

  /** Reads a PROXY header from a trusted peer; refuses one from anybody else (403, as gunicorn). */
  private readProxyHeader(socket: Socket, bytes: Buffer): 'wait' | 'refused' | { length: number; client?: ClientAddress } {
    const header = parseProxyHeader(bytes);
    switch (header.kind) {
      case 'none':
        return { length: 0 };
      case 'partial':
        return 'wait';
      case 'invalid':
        this.refuse(socket, 400, 'Bad Request', header.reason);
        return 'refused';
      case 'header':
        if (!this.settings.proxyFrom?.(socket.remoteAddress)) {
          this.refuse(socket, 403, 'Forbidden', `PROXY header from ${socket.remoteAddress ?? 'a unix socket peer'}, which is not in --proxy-allow-from`);
          return 'refused';
        }
        return { length: header.length, client: header.client };
    }
  }

  /** The client half-closed before finishing its head: whatever it sent goes to an actor to be judged. */
  private onEnd(socket: Socket, entry: Waiting): void {
    const bytes = entry.buffer.subarray(0, entry.length);
    if (bytes.length === 0 && entry.proxyRead) {
      this.forget(socket, entry);
      socket.end();
      return;
    }
    if (!entry.proxyRead) {
      this.refuse(socket, 400, 'Bad Request', 'connection ended inside a PROXY header');
      return;
    }
    this.release(socket, entry, bytes, true);
  }

  private release(socket: Socket, entry: Waiting, head: Buffer, ended = false): void {
    this.forget(socket, entry);
    socket.pause();
    this.onArrival({ socket, head, ...(entry.client ? { client: entry.client } : {}), ...(ended ? { ended } : {}) });
  }

  private forget(socket: Socket, entry: Waiting): void {
    this.waiting.delete(socket);
    socket.off('data', entry.onData);
    socket.off('end', entry.onEnd);
    socket.off('close', this.leaveOnClose);
  }

  private refuse(socket: Socket, status: 400 | 403 | 408, reason: string, detail: string): void {
    const entry = this.waiting.get(socket);
    if (entry) this.forget(socket, entry);
    const body = `${reason}: ${detail}\n`;
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
    );
    setTimeout(() => socket.destroy(), CLOSE_GRACE_MS).unref();
  }

  private sweep(): void {
    if (this.sweepResumes) return; // a sliced sweep is under way and will come back here
    const now = Date.now();
    const headDeadline = now - this.settings.headerTimeoutMs;
    const silentDeadline = now - SILENT_GRACE_WHEN_STOPPING_MS;
    let refused = 0;
    const budget = new SliceBudget();
    // Insertion order is arrival order: once one is within its deadline, all later ones are too.
    for (const [socket, entry] of this.waiting) {
      if (entry.since <= headDeadline) {
        if (refused === REFUSALS_PER_SLICE || (refused > 0 && budget.spent())) {
          // The rest in the next slice (shared/shedding.ts): accepted and readable connections go first.
          this.sweepResumes = setTimeout(() => {
            this.sweepResumes = null;
            this.sweep();
          }, SLICE_GAP_MS).unref();
          return;
        }
        refused++;
        this.refuse(socket, 408, 'Request Timeout', `no complete request head within ${this.settings.headerTimeoutMs / 1000} s`);
        continue;
      }
      if (!this.stopping) break;
      if (entry.length === 0 && entry.since <= silentDeadline) {
        this.forget(socket, entry);
        socket.destroy();
      }
    }
  }
}
