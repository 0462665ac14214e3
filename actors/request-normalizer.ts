/**
 * The parser-compatibility layer: a small HTTP/1.1 framer in front of Node's parser that rewrites, into
 * something Node's parser accepts, the requests gunicorn accepts and Node's refuses. Off unless a setting
 * asks for it (`--http-compat gunicorn`, `--permit-obsolete-folding`, `--strip-header-spaces`,
 * `--permit-unconventional-http-method`, `--casefold-http-method`): by default Node's parser alone judges.
 *
 * Why not Node's `insecureHTTPParser`: it is all or nothing, and with it a bare node:http server accepted 19
 * of the 51 smuggling cases in spec/smuggling.test.ts. Here each leniency is one rewrite, and the framer
 * follows a connection only while its framing is plain (one Content-Length, or `Transfer-Encoding:
 * chunked` alone): at anything else (an upgrade, CONNECT, a bare LF, conflicting lengths, a malformed
 * chunk) it stops rewriting and hands the rest of the connection's bytes to Node's parser untouched, which
 * then refuses or accepts exactly as it always does. So the framer can only ever make Node see *fewer*
 * oddities, never a different message boundary.
 *
 * What it rewrites, and what the app sees (gunicorn's view of the request, restored after Node parsed it):
 * - a method Node does not know (`-BLARGH`, gunicorn's default: an upper-case token of 3-20 characters;
 *   any token with --permit-unconventional-http-method) goes to Node as GET; the app sees the real one;
 * - raw bytes >= 0x80 in the target go to Node percent-encoded; the app sees them as sent (latin1);
 * - `Transfer-Encoding: identity` (the identity coding, i.e. none) is hidden from Node, which refuses it,
 *   and put back in the app's headers; the body is framed by Content-Length as gunicorn frames it;
 * - whitespace around `;` and `=` in chunk extensions (RFC 9112's BWS, which Node refuses): the
 *   extensions are dropped (Node never shows them to apps anyway);
 * - obs-fold continuation lines are joined with one space (RFC 9112 §5.2), counting the folded field's
 *   bytes against --limit-request-field-size as gunicorn does;
 * - whitespace between a header name and its colon is removed.
 * It holds at most one line of a connection's bytes (plus one header line when unfolding), so a trickled
 * head still reaches Node's parser, and its header deadline, line by line.
 */
import { METHODS, type IncomingMessage } from 'node:http';
import type { ParserCompat } from '../shared/actor-protocol.js';

/** `--http-compat`: `node`, Node's parser alone (default); `gunicorn`, also what gunicorn's accepts by default. */

/** What Node's parser was not shown about one request, put back before the app sees it. */
export interface HeadFixup {
  method?: string;
  url?: string;
  /** Header fields hidden from Node's parser: `at` is their index among the head's fields. */
  hidden?: Array<{ at: number; name: string; value: string }>;
  /** The head breaks a limit only the framer could measure (a folded field's size). */
  reject?: { status: 431; reason: string };
}

const NODE_METHODS = new Set(METHODS);
/** RFC 9110 §5.6.2 token. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** gunicorn's default method check: a token without lower case or '#', 3 to 20 characters. */
const GUNICORN_METHOD = /^[!$%&'*+\-.^_`|~0-9A-Z]{3,20}$/;
/** RFC 9112 §7.1.1 chunk-ext with BWS: `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`. */
const CHUNK_EXT_WITH_BWS = /^(?:[ \t]*;[ \t]*[!#$%&'*+\-.^_`|~0-9A-Za-z]+(?:[ \t]*=[ \t]*(?:[!#$%&'*+\-.^_`|~0-9A-Za-z]+|"(?:[^"\\]|\\.)*"))?)+$/;
const CHUNK_SIZE_LINE = /^([0-9A-Fa-f]{1,15})(.*)$/;
const HIGH_BYTE = /[\x80-\xff]/;
const HIGH_BYTES = /[\x80-\xff]/g;
/** A line longer than this is not ours to judge: the rest goes to Node's parser as it is (it answers 431). */
const MAX_LINE = 64 * 1024;
const EMPTY = Buffer.alloc(0);

type State = 'request-line' | 'headers' | 'body' | 'chunk-size' | 'chunk-data' | 'chunk-end' | 'trailers' | 'untouched';

/** A header line read but not yet passed on: the next line may continue it (obs-fold). */
interface HeldField {
  raw: Buffer;
  name: string;
  /** The value's parts, one per physical line, stripped of surrounding whitespace. */
  parts: string[];
  /** Bytes of all its lines with their CRLFs (what gunicorn compares with the field size limit). */
  rawLength: number;
  rewritten: boolean;
}

/** The two methods most requests use, recognised without making a string. */
function isGetOrPost(bytes: Buffer, from: number, space: number): boolean {
  const length = space - from;
  if (length === 3) return bytes[from] === 0x47 && bytes[from + 1] === 0x45 && bytes[from + 2] === 0x54; // GET
  return length === 4 && bytes[from] === 0x50 && bytes[from + 1] === 0x4f && bytes[from + 2] === 0x53 && bytes[from + 3] === 0x54; // POST
}

/** Does the header name at `bytes[at..]` equal `lowerName` (same length known), case-insensitively? */
function namedAs(bytes: Buffer, at: number, lowerName: string): boolean {
  for (let i = 0; i < lowerName.length; i++) if ((bytes[at + i] | 0x20) !== lowerName.charCodeAt(i)) return false;
  return true;
}

function stripOws(text: string): string {
  return text.replace(/^[ \t]+|[ \t]+$/g, '');
}

export class RequestNormalizer {
  private state: State = 'request-line';
  /** The line being read, in pieces (a line may span reads). */
  private line: Buffer[] = [];
  private lineLength = 0;
  private out: Buffer[] = [];
  /** Body or chunk bytes still to pass through. */
  private remaining = 0;
  private held: HeldField | null = null;
  /** Heads passed on so far; the n-th head's request is the n-th the server emits on this connection. */
  private heads = 0;
  private readonly fixups = new Map<number, HeadFixup>();
  private fixup: HeadFixup = {};
  private fields = 0;
  private contentLengths: string[] = [];
  private transferEncodings: string[] = [];
  private upgrade = false;

  constructor(private readonly compat: ParserCompat) {}

  /** The fix-up for the `ordinal`-th request of the connection (1-based), if its head was rewritten. */
  takeFixup(ordinal: number): HeadFixup | undefined {
    const fixup = this.fixups.get(ordinal);
    if (fixup) this.fixups.delete(ordinal);
    return fixup;
  }

  /** Client bytes in, bytes for Node's parser out (possibly none yet: a line is incomplete). */
  feed(chunk: Uint8Array): Uint8Array {
    if (this.state === 'untouched') return chunk;
    const bytes = Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    let at = 0;
    while (at < bytes.length) {
      const state = this.state as State;
      if (state === 'untouched') {
        this.passOn(bytes.subarray(at));
        break;
      }
      if (state === 'body' || state === 'chunk-data') {
        const take = Math.min(this.remaining, bytes.length - at);
        this.passOn(bytes.subarray(at, at + take));
        at += take;
        this.remaining -= take;
        if (this.remaining === 0) this.state = state === 'body' ? 'request-line' : 'chunk-end';
        continue;
      }
      if (state === 'request-line' && this.lineLength === 0) {
        const after = this.plainHead(bytes, at);
        if (after !== -1) {
          at = after;
          continue;
        }
      }
      const lf = bytes.indexOf(0x0a, at);
      const end = lf === -1 ? bytes.length : lf + 1;
      // An unfinished line is copied: a relayed chunk is a view into a whole batch (up to 512 KiB), which a
      // trickled line must not keep alive.
      this.line.push(lf === -1 ? Buffer.from(bytes.subarray(at, end)) : bytes.subarray(at, end));
      this.lineLength += end - at;
      at = end;
      if (lf === -1) {
        if (this.lineLength > MAX_LINE) this.giveUp(this.takeLine());
        break;
      }
      this.onLine(this.takeLine());
    }
    return this.collect();
  }

  /**
   * The client sent its FIN: whatever is held (an unfinished line) goes to Node's parser as it is, so a
   * truncated request is answered as Node answers it, not dropped here.
   */
  end(): Uint8Array {
    if (this.state === 'untouched') return EMPTY;
    this.giveUp(this.takeLine());
    return this.collect();
  }

  private takeLine(): Buffer {
    const line = this.line.length === 1 ? this.line[0] : Buffer.concat(this.line, this.lineLength);
    this.line = [];
    this.lineLength = 0;
    return line;
  }

  private collect(): Uint8Array {
    const { out } = this;
    if (out.length === 0) return EMPTY;
    this.out = [];
    return out.length === 1 ? out[0] : Buffer.concat(out);
  }

  /**
   * The usual case, checked on the bytes without building strings: a whole head in this read that needs
   * no rewrite (a method Node knows, no raw non-ASCII byte, no fold, no space before a colon, no
   * Transfer-Encoding or Upgrade, at most one plain Content-Length). It is passed on as one piece and its
   * body followed; returns where it ends, or -1 to read it line by line instead.
   */
  private plainHead(bytes: Buffer, from: number): number {
    const lineEnd = bytes.indexOf(0x0a, from);
    const space = bytes.indexOf(0x20, from);
    if (lineEnd < from + 2 || bytes[lineEnd - 1] !== 0x0d || space === -1 || space > lineEnd) return -1;
    if (!isGetOrPost(bytes, from, space)) {
      const method = bytes.toString('latin1', from, space);
      if (!NODE_METHODS.has(method) || method === 'CONNECT') return -1;
    }
    for (let i = space; i < lineEnd - 1; i++) if (bytes[i] >= 0x80 || bytes[i] === 0x0d) return -1;
    let length = -1;
    let line = lineEnd + 1;
    for (;;) {
      const next = bytes.indexOf(0x0a, line);
      if (next === -1 || bytes[next - 1] !== 0x0d) return -1; // not all here, or a bare LF
      if (next === line + 1) break; // the empty line: the head is whole
      const first = bytes[line];
      if (first === 0x20 || first === 0x09 || bytes.indexOf(0x0d, line) !== next - 1) return -1;
      const colon = bytes.indexOf(0x3a, line);
      if (colon <= line || colon > next) return -1;
      const beforeColon = bytes[colon - 1];
      if (beforeColon === 0x20 || beforeColon === 0x09) return -1;
      switch (colon - line) {
        case 7: // Upgrade
        case 17: // Transfer-Encoding
          if (namedAs(bytes, line, colon - line === 7 ? 'upgrade' : 'transfer-encoding')) return -1;
          break;
        case 14:
          if (namedAs(bytes, line, 'content-length')) {
            if (length !== -1) return -1;
            const value = stripOws(bytes.toString('latin1', colon + 1, next - 1));
            if (!/^\d{1,15}$/.test(value)) return -1;
            length = Number(value);
          }
          break;
      }
      line = next + 1;
    }
    const after = line + 2;
    this.heads++;
    this.passOn(from === 0 && after === bytes.length ? bytes : bytes.subarray(from, after));
    this.remaining = Math.max(length, 0);
    this.state = this.remaining > 0 ? 'body' : 'request-line';
    return after;
  }

  /** Passes bytes on as they are; adjacent pieces of one read stay one piece (no copy). */
  private passOn(piece: Buffer): void {
    const last = this.out[this.out.length - 1];
    if (last && last.buffer === piece.buffer && last.byteOffset + last.length === piece.byteOffset) {
      this.out[this.out.length - 1] = Buffer.from(last.buffer, last.byteOffset, last.length + piece.length);
    } else {
      this.out.push(piece);
    }
  }

  private emit(text: string): void {
    this.out.push(Buffer.from(text, 'latin1'));
  }

  /**
   * Stops rewriting: `raw` and everything after it go to Node's parser as they are. A head whose request
   * line was rewritten keeps its fix-up, in case Node's parser accepts what we did not judge.
   */
  private giveUp(raw: Buffer): void {
    this.passHeld();
    this.passOn(raw);
    if (this.state === 'headers' && this.hasFixup()) this.fixups.set(this.heads + 1, this.fixup);
    this.state = 'untouched';
  }

  private hasFixup(): boolean {
    const { fixup } = this;
    return fixup.method !== undefined || fixup.url !== undefined || fixup.hidden !== undefined || fixup.reject !== undefined;
  }

  private onLine(raw: Buffer): void {
    const length = raw.length;
    // A line must end in CRLF and hold no other CR: anything else is Node's parser's to judge.
    if (length < 2 || raw[length - 2] !== 0x0d || raw.indexOf(0x0d) !== length - 2) {
      this.giveUp(raw);
      return;
    }
    const text = raw.toString('latin1', 0, length - 2);
    switch (this.state) {
      case 'request-line':
        return this.onRequestLine(raw, text);
      case 'headers':
        return this.onHeaderLine(raw, text);
      case 'chunk-size':
        return this.onChunkSize(raw, text);
      case 'chunk-end':
        if (text !== '') return this.giveUp(raw);
        this.passOn(raw);
        this.state = 'chunk-size';
        return;
      case 'trailers':
        this.passOn(raw);
        if (text === '') this.state = 'request-line';
        return;
      default:
        this.giveUp(raw);
    }
  }

  private onRequestLine(raw: Buffer, text: string): void {
    if (text === '') {
      this.passOn(raw); // empty lines before a request line: Node's parser skips them
      return;
    }
    const parts = text.split(' ');
    if (parts.length !== 3) return this.giveUp(raw);
    const [sent, target, version] = parts;
    const { compat } = this;
    this.fixup = {};
    this.fields = 0;
    this.contentLengths = [];
    this.transferEncodings = [];
    let method = compat.casefoldHttpMethod ? sent.toUpperCase() : sent;
    if (!NODE_METHODS.has(method)) {
      const allowed = compat.permitUnconventionalHttpMethod ? TOKEN.test(method) : compat.gunicorn && GUNICORN_METHOD.test(method);
      if (!allowed) return this.giveUp(raw);
      this.fixup.method = method;
      method = 'GET'; // any method Node knows frames a request the same way, except CONNECT and HEAD
    }
    this.upgrade = method === 'CONNECT';
    let sentTarget = target;
    if (compat.gunicorn && HIGH_BYTE.test(target)) {
      this.fixup.url = target;
      sentTarget = target.replace(HIGH_BYTES, (byte) => `%${byte.charCodeAt(0).toString(16).toUpperCase()}`);
    }
    if (method === sent && sentTarget === target) this.passOn(raw);
    else this.emit(`${method} ${sentTarget} ${version}\r\n`);
    this.state = 'headers';
  }

  private onHeaderLine(raw: Buffer, text: string): void {
    if (text === '') {
      this.passHeld();
      this.passOn(raw);
      this.endOfHead();
      return;
    }
    const first = raw[0];
    if (first === 0x20 || first === 0x09) {
      const held = this.held;
      if (!this.compat.permitObsoleteFolding || !held) return this.giveUp(raw);
      held.parts.push(stripOws(text));
      held.rawLength += raw.length;
      held.rewritten = true;
      return;
    }
    this.passHeld();
    const colon = text.indexOf(':');
    if (colon <= 0) return this.giveUp(raw);
    let name = text.slice(0, colon);
    let rewritten = false;
    if (name.endsWith(' ') || name.endsWith('\t')) {
      if (!this.compat.stripHeaderSpaces) return this.giveUp(raw);
      name = name.replace(/[ \t]+$/, '');
      if (name === '') return this.giveUp(raw);
      rewritten = true;
    }
    this.held = { raw, name, parts: [stripOws(text.slice(colon + 1))], rawLength: raw.length, rewritten };
    // Only unfolding needs to see the next line before passing this one on.
    if (!this.compat.permitObsoleteFolding) this.passHeld();
  }

  /** Passes the held header line on (rewritten if it was folded or renamed), noting what frames the body. */
  private passHeld(): void {
    const held = this.held;
    if (!held) return;
    this.held = null;
    const { name } = held;
    const value = held.parts.filter((part) => part !== '').join(' ');
    const fieldSize = this.compat.fieldSize;
    if (held.parts.length > 1 && held.rawLength > fieldSize) {
      this.fixup.reject = { status: 431, reason: `header field ${name} longer than ${fieldSize} bytes` };
    }
    switch (name.toLowerCase()) {
      case 'transfer-encoding':
        if (this.compat.gunicorn && value.toLowerCase() === 'identity') {
          (this.fixup.hidden ??= []).push({ at: this.fields, name, value });
          return;
        }
        this.transferEncodings.push(value.toLowerCase());
        break;
      case 'content-length':
        this.contentLengths.push(value);
        break;
      case 'upgrade':
        this.upgrade = true;
        break;
    }
    this.fields++;
    if (held.rewritten) this.emit(`${name}: ${value}\r\n`);
    else this.passOn(held.raw);
  }

  /** The head is passed on: remember its fix-up and follow its body, if its framing is plain. */
  private endOfHead(): void {
    this.heads++;
    if (this.hasFixup()) this.fixups.set(this.heads, this.fixup);
    const lengths = this.contentLengths;
    const codings = this.transferEncodings;
    if (this.upgrade) {
      // After an upgrade (or CONNECT) the bytes are not HTTP any more.
      this.state = 'untouched';
    } else if (codings.length > 0) {
      this.state = codings.length === 1 && codings[0] === 'chunked' && lengths.length === 0 ? 'chunk-size' : 'untouched';
    } else if (lengths.length === 1 && /^\d{1,15}$/.test(lengths[0])) {
      this.remaining = Number(lengths[0]);
      this.state = this.remaining > 0 ? 'body' : 'request-line';
    } else {
      this.state = lengths.length === 0 ? 'request-line' : 'untouched';
    }
  }

  private onChunkSize(raw: Buffer, text: string): void {
    const match = CHUNK_SIZE_LINE.exec(text);
    if (!match) return this.giveUp(raw);
    const [, size, extensions] = match;
    if (extensions !== '' && this.compat.gunicorn && /[ \t]/.test(extensions) && CHUNK_EXT_WITH_BWS.test(extensions)) {
      this.emit(`${size}\r\n`); // Node refuses BWS in extensions, and never shows extensions to apps
    } else {
      this.passOn(raw);
    }
    this.remaining = parseInt(size, 16);
    this.state = this.remaining === 0 ? 'trailers' : 'chunk-data';
  }
}

const NORMALIZER = Symbol('the request normalizer of this connection');
type WithNormalizer = { [NORMALIZER]?: RequestNormalizer };

export function attachNormalizer(socket: object, normalizer: RequestNormalizer): void {
  (socket as WithNormalizer)[NORMALIZER] = normalizer;
}

/**
 * Gives the app the request as the client sent it (the method, target and fields Node's parser was not
 * shown). `ordinal` is the request's place on its connection. Returns the fix-up, for its `reject`.
 */
export function restoreRequest(req: IncomingMessage, ordinal: number): HeadFixup | undefined {
  const fixup = (req.socket as WithNormalizer | null)?.[NORMALIZER]?.takeFixup(ordinal);
  if (!fixup) return undefined;
  if (fixup.method !== undefined) req.method = fixup.method;
  if (fixup.url !== undefined) req.url = fixup.url;
  for (const { at, name, value } of fixup.hidden ?? []) {
    // req.headers is built from rawHeaders on first use (Node may have used it already, for Expect):
    // build it before the splice, then add the field to both.
    const headers = req.headers;
    req.rawHeaders.splice(at * 2, 0, name, value);
    const key = name.toLowerCase();
    headers[key] = headers[key] === undefined ? value : `${String(headers[key])}, ${value}`;
  }
  return fixup;
}
