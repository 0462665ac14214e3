/**
 * The PROXY protocol (HAProxy's, v1 text and v2 binary): a load balancer that forwards TCP prefixes each
 * connection with the client's real address. Read by the head gate (head-gate.ts) before the request head,
 * only from peers in `--proxy-allow-from`, only with `--proxy-protocol` on; a connection without the
 * prefix is served as a plain one (gunicorn's behaviour).
 *
 * Hand-written rather than taken from npm: proxy-protocol-js (the maintained parser) accepts
 * "PROXY TCP4 not-an-ip ..." as an address, refuses the spec's "PROXY UNKNOWN" and decodes the bytes after
 * the header as a string; the whole format is two small, fixed layouts.
 * Spec: https://www.haproxy.org/download/2.9/doc/proxy-protocol.txt
 */
import net from 'node:net';

/** The client as the proxy saw it. */
export interface ClientAddress {
  address: string;
  port: number;
  family: 'IPv4' | 'IPv6';
}

export type ProxyHeader =
  /** The bytes do not start with a PROXY header: a plain request. */
  | { kind: 'none' }
  /** They may: wait for more bytes. */
  | { kind: 'partial' }
  | { kind: 'invalid'; reason: string }
  /** A header of `length` bytes; `client` is absent for LOCAL / UNKNOWN / unix (keep the socket's own peer). */
  | { kind: 'header'; length: number; client?: ClientAddress };

const V1_PREFIX = Buffer.from('PROXY ');
/** v1: the whole line, CRLF included, is at most 107 bytes. */
const V1_MAX_LINE = 107;
const V2_SIGNATURE = Buffer.from([0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a]);
const V2_FIXED = 16;

/** Does `bytes` begin with `prefix`, or with as much of it as has arrived? */
function startsWithSoFar(bytes: Buffer, prefix: Buffer): 'yes' | 'maybe' | 'no' {
  const n = Math.min(bytes.length, prefix.length);
  if (bytes.compare(prefix, 0, n, 0, n) !== 0) return 'no';
  return n === prefix.length ? 'yes' : 'maybe';
}

export function parseProxyHeader(bytes: Buffer): ProxyHeader {
  const v1 = startsWithSoFar(bytes, V1_PREFIX);
  if (v1 === 'yes') return parseV1(bytes);
  const v2 = startsWithSoFar(bytes, V2_SIGNATURE);
  if (v2 === 'yes') return parseV2(bytes);
  return v1 === 'maybe' || v2 === 'maybe' ? { kind: 'partial' } : { kind: 'none' };
}

function port(text: string): number | undefined {
  if (!/^\d{1,5}$/.test(text)) return undefined;
  const value = Number(text);
  return value <= 65535 ? value : undefined;
}

function parseV1(bytes: Buffer): ProxyHeader {
  const end = bytes.indexOf('\r\n');
  if (end === -1 || end + 2 > V1_MAX_LINE) {
    return end === -1 && bytes.length < V1_MAX_LINE ? { kind: 'partial' } : { kind: 'invalid', reason: 'PROXY line longer than 107 bytes' };
  }
  const line = bytes.toString('latin1', 0, end);
  const shown = line.length > 60 ? `${line.slice(0, 60)}...` : line;
  const parts = line.split(' ');
  if (parts[1] === 'UNKNOWN') return { kind: 'header', length: end + 2 };
  if (parts.length !== 6) return { kind: 'invalid', reason: `Invalid PROXY line: '${shown}'` };
  const [, protocol, source, destination, sourcePort, destinationPort] = parts;
  const family = protocol === 'TCP4' ? 'IPv4' : protocol === 'TCP6' ? 'IPv6' : undefined;
  if (!family) return { kind: 'invalid', reason: `Invalid PROXY line: unknown protocol in '${shown}'` };
  const isAddress = family === 'IPv4' ? net.isIPv4 : net.isIPv6;
  if (!isAddress(source) || !isAddress(destination)) return { kind: 'invalid', reason: `Invalid PROXY line: bad address in '${shown}'` };
  const clientPort = port(sourcePort);
  if (clientPort === undefined || port(destinationPort) === undefined) return { kind: 'invalid', reason: `Invalid PROXY line: invalid port in '${shown}'` };
  return { kind: 'header', length: end + 2, client: { address: source, port: clientPort, family } };
}

function ipv6(bytes: Buffer, at: number): string {
  const groups: string[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(bytes.readUInt16BE(at + i).toString(16));
  // Let the BlockList-compatible form be the canonical short one ("2001:db8::1").
  return new net.SocketAddress({ address: groups.join(':'), family: 'ipv6' }).address;
}

function parseV2(bytes: Buffer): ProxyHeader {
  if (bytes.length < V2_FIXED) return { kind: 'partial' };
  const versionCommand = bytes[12];
  if (versionCommand >> 4 !== 2) return { kind: 'invalid', reason: `PROXY v2: unsupported version ${versionCommand >> 4}` };
  const command = versionCommand & 0x0f;
  if (command > 1) return { kind: 'invalid', reason: `PROXY v2: unknown command ${command}` };
  const familyProtocol = bytes[13];
  const length = V2_FIXED + bytes.readUInt16BE(14);
  if (bytes.length < length) return { kind: 'partial' };
  // LOCAL (health checks from the proxy itself), UNSPEC, UDP and unix sockets: keep the socket's own peer.
  if (command === 0) return { kind: 'header', length };
  const at = V2_FIXED;
  const addressBytes = length - V2_FIXED;
  switch (familyProtocol) {
    case 0x11: // TCP over IPv4
      if (addressBytes < 12) return { kind: 'invalid', reason: 'PROXY v2: IPv4 addresses truncated' };
      return { kind: 'header', length, client: { address: [...bytes.subarray(at, at + 4)].join('.'), port: bytes.readUInt16BE(at + 8), family: 'IPv4' } };
    case 0x21: // TCP over IPv6
      if (addressBytes < 36) return { kind: 'invalid', reason: 'PROXY v2: IPv6 addresses truncated' };
      return { kind: 'header', length, client: { address: ipv6(bytes, at), port: bytes.readUInt16BE(at + 32), family: 'IPv6' } };
    default:
      return { kind: 'header', length };
  }
}
