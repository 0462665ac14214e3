/**
 * `--forwarded-allow-ips`: which peers may tell the app who the client is. A proxy in front says so in
 * `X-Forwarded-For`, `X-Forwarded-Proto`, `Forwarded` and friends; a client talking to us directly could
 * say the same things to lie about its address or pretend it came over HTTPS. So, as gunicorn does:
 * - from a trusted peer the headers reach the app, and an HTTPS scheme they declare becomes the scheme a
 *   Fetch app's `request.url` carries (listener apps read the headers themselves, e.g. Express's
 *   `trust proxy`);
 * - from any other peer they are removed before the app sees the request.
 * Addresses are single IPs or CIDR networks, comma-separated; `*` trusts every peer.
 */
import { BlockList, isIP } from 'node:net';
import type { IncomingMessage } from 'node:http';

/** The headers a proxy sets about the client; lower-case, as in `req.headers`. */
export const FORWARDING_HEADERS = [
  'forwarded',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-protocol',
  'x-forwarded-ssl',
  'x-forwarded-host',
  'x-forwarded-port',
  'x-real-ip',
] as const;

const FORWARDING = new Set<string>(FORWARDING_HEADERS);

/** Validates the setting's text; returns a message naming the bad entry, or null. */
export function checkAllowIps(text: string): string | null {
  for (const entry of splitEntries(text)) {
    if (entry === '*') continue;
    const [address, prefix, extra] = entry.split('/');
    const family = isIP(address);
    if (family === 0 || extra !== undefined) return `'${entry}' is not an IP address or network`;
    if (prefix !== undefined && (!/^\d+$/.test(prefix) || Number(prefix) > (family === 4 ? 32 : 128))) return `'${entry}' has a bad prefix length`;
  }
  return null;
}

function splitEntries(text: string): string[] {
  return text
    .split(',')
    .map((entry) => entry.trim())
    .filter((entry) => entry !== '');
}

/**
 * gunicorn's secure scheme headers and the value each has when the client came over HTTPS. A trusted proxy's
 * request whose headers disagree (one says HTTPS, another says not) is refused: the app cannot know which
 * one the proxy meant, and a client may have added one the proxy did not strip (gunicorn: InvalidSchemeHeaders).
 */
const SECURE_SCHEME_HEADERS = [
  ['x-forwarded-proto', 'https'],
  ['x-forwarded-protocol', 'ssl'],
  ['x-forwarded-ssl', 'on'],
] as const;

function schemeHeadersDisagree(headers: IncomingMessage['headers']): boolean {
  let secure: boolean | undefined;
  for (const [name, secureValue] of SECURE_SCHEME_HEADERS) {
    const value = headers[name];
    if (typeof value !== 'string') continue;
    const says = value.split(',')[0].trim().toLowerCase() === secureValue;
    if (secure !== undefined && secure !== says) return true;
    secure = says;
  }
  return false;
}

/** Is the scheme a trusted proxy declares HTTPS? Reads gunicorn's secure scheme headers and `Forwarded`. */
function declaresHttps(headers: IncomingMessage['headers']): boolean {
  const proto = headers['x-forwarded-proto'];
  if (typeof proto === 'string') return proto.split(',')[0].trim().toLowerCase() === 'https';
  if (headers['x-forwarded-protocol'] === 'ssl' || headers['x-forwarded-ssl'] === 'on') return true;
  const forwarded = headers.forwarded;
  return typeof forwarded === 'string' && /(?:^|[;,\s])proto="?https"?(?:[;,\s]|$)/i.test(forwarded.split(',')[0]);
}

export interface ForwardingPolicy {
  /**
   * Applies the policy to one request in place. `rewriteScheme`: for Fetch apps, an HTTPS scheme declared
   * by a trusted proxy becomes part of the request target (absolute form), which the Fetch adapter turns
   * into `request.url`. Returns why the request must be refused (a trusted peer's scheme headers
   * disagree), or null.
   */
  apply(req: IncomingMessage, rewriteScheme: boolean): { status: 400; reason: string } | null;
}

/**
 * A test for "is this peer in the list": IPs and CIDR networks, `*` for every peer. A unix socket peer (no
 * address) matches every list, as in gunicorn: it is a local process allowed to open the socket file, whose
 * permissions (`--umask`) decide who that is. Shared with `--proxy-allow-from` (shared/head-gate.ts).
 */
export function createAddressMatcher(allowIps: string): (address: string | undefined) => boolean {
  const entries = splitEntries(allowIps);
  const trustAll = entries.includes('*');
  const trusted = new BlockList();
  for (const entry of entries) {
    if (entry === '*') continue;
    const [address, prefix] = entry.split('/');
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    if (prefix === undefined) trusted.addAddress(address, type);
    else trusted.addSubnet(address, Number(prefix), type);
  }
  return (address) => {
    if (trustAll) return true;
    // No address: a unix-socket peer, a local process allowed to open the socket file (gunicorn trusts them too).
    if (!address) return true;
    const type = isIP(address) === 6 ? 'ipv6' : 'ipv4';
    // An IPv4 peer on a dual-stack socket shows as ::ffff:a.b.c.d; match it against the IPv4 entries too.
    if (type === 'ipv6' && address.startsWith('::ffff:') && isIP(address.slice(7)) === 4)
      return trusted.check(address.slice(7), 'ipv4') || trusted.check(address, 'ipv6');
    return trusted.check(address, type);
  };
}

export function createForwardingPolicy(allowIps: string): ForwardingPolicy {
  const isTrusted = createAddressMatcher(allowIps);

  return {
    apply(req, rewriteScheme) {
      const { headers } = req;
      // The common case (no forwarding header at all) costs a few property lookups.
      let present = false;
      for (const name of FORWARDING_HEADERS) {
        if (headers[name] !== undefined) {
          present = true;
          break;
        }
      }
      if (!present) return null;
      if (isTrusted(req.socket.remoteAddress)) {
        if (schemeHeadersDisagree(headers)) return { status: 400, reason: 'the X-Forwarded-Proto, X-Forwarded-Protocol and X-Forwarded-Ssl headers disagree' };
        if (rewriteScheme && req.url?.startsWith('/') && headers.host && declaresHttps(headers)) req.url = `https://${headers.host}${req.url}`;
        return null;
      }
      for (const name of FORWARDING_HEADERS) delete headers[name];
      const raw = req.rawHeaders;
      const kept: string[] = [];
      for (let i = 0; i < raw.length; i += 2) if (!FORWARDING.has(raw[i].toLowerCase())) kept.push(raw[i], raw[i + 1]);
      raw.splice(0, raw.length, ...kept);
      return null;
    },
  };
}
