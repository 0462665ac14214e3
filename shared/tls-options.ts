/**
 * The TLS a server speaks (`--certfile`, `--keyfile`, `--ca-certs`, `--cert-reqs`, `--ciphers`,
 * `--tls-min-version`), as plain data both threads can hold: main reads the files (source/accept/tls.ts) and
 * either terminates TLS itself (the relay) or gives this to every actor, which terminates it on the sockets
 * it owns (actors/tls-front.ts). The bytes are structured-cloned to each actor once, at its start.
 */
import type tls from 'node:tls';

export const CERT_REQS = ['none', 'optional', 'required'] as const;
/** Whether clients are asked for a certificate and whether one that does not verify is refused (gunicorn's `--cert-reqs`). */
export type CertReqs = (typeof CERT_REQS)[number];

export const TLS_MIN_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsMinVersion = (typeof TLS_MIN_VERSIONS)[number];

export interface TlsMaterial {
  cert: Uint8Array;
  key: Uint8Array;
  /** `--ca-certs`: the CAs client certificates are verified against; undefined: Node's bundled roots. */
  ca?: Uint8Array;
  certReqs: CertReqs;
  /** `--ciphers` (OpenSSL's cipher list syntax); undefined: Node's default list. */
  ciphers?: string;
  minVersion: TlsMinVersion;
}

/** What a TLS server needs besides the material: the same for main's listeners and an actor's front. */
export interface TlsServing {
  material: TlsMaterial;
  /** `--header-timeout`: a client has this long for its handshake too. */
  handshakeTimeoutMs: number;
  /** ALPN protocol ids offered, most preferred first (`--http-protocols`): `h2`, `http/1.1`. */
  alpn: string[];
}

/** What an actor needs to end TLS itself (actors/tls-front.ts). */
export type ActorTls = TlsServing;

/**
 * Whether a socket is a TLS session, without loading node:tls where no TLS is served (`instanceof TLSSocket`
 * needs the class): a TLSSocket says `encrypted`, a plain one does not.
 */
export function isTlsSocket(socket: object): socket is tls.TLSSocket {
  return (socket as { encrypted?: unknown }).encrypted === true;
}

/** ALPN ids for gunicorn's protocol names (`h2,h1` → `['h2', 'http/1.1']`). */
export function alpnProtocols(httpProtocols: string): string[] {
  return httpProtocols.split(',').map((name) => (name === 'h2' ? 'h2' : 'http/1.1'));
}

/**
 * Options for a `tls.Server` that is fed connections (or listens): the protocols offered by ALPN, the
 * handshake bounded by the header deadline. Not half-open during the handshake: see guardHandshakes.
 */
export function tlsServerOptions({ material, handshakeTimeoutMs, alpn }: TlsServing): tls.TlsOptions {
  return {
    cert: Buffer.from(material.cert),
    key: Buffer.from(material.key),
    ...(material.ca ? { ca: Buffer.from(material.ca) } : {}),
    ...(material.ciphers ? { ciphers: material.ciphers } : {}),
    minVersion: material.minVersion,
    requestCert: material.certReqs !== 'none',
    rejectUnauthorized: material.certReqs === 'required',
    ALPNProtocols: alpn,
    allowHalfOpen: false,
    handshakeTimeout: handshakeTimeoutMs,
  };
}

/**
 * Makes a TLS server let go of every connection whose handshake does not finish, and serve half-open the
 * ones that do.
 * - A `tls.Server` created with `allowHalfOpen` never closes a connection whose client sent its FIN before the
 *   handshake ended, not even at its handshake timeout: the socket sits in CLOSE-WAIT and keeps the server's
 *   `close()` from ever finishing (spec/tls.test.ts has the client that does it). So the server is not
 *   half-open, and each connection becomes half-open once secure, as the plain listeners are: a client that
 *   half-closes after its request still gets the answer.
 * - With a 'tlsClientError' listener the server leaves the failed socket to it: it is destroyed at once.
 */
export function guardHandshakes(server: tls.Server, onFailure?: (error: Error) => void): void {
  server.prependListener('secureConnection', (socket: tls.TLSSocket) => {
    socket.allowHalfOpen = true;
  });
  server.on('tlsClientError', (error: Error, socket: tls.TLSSocket) => {
    onFailure?.(error);
    socket.destroy();
  });
}
