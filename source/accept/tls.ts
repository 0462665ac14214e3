/**
 * HTTPS: reads and checks the files of `--certfile`, `--keyfile` and `--ca-certs` with the other TLS settings,
 * and decides which thread ends TLS. Wherever the transfer hand-off moves sockets unread, each actor runs the
 * handshake on the sockets it owns (actors/tls-front.ts) and main never touches a byte. Where main must read
 * a connection first (the relay; a PROXY header; `--sticky-sessions`, which reads the first request head),
 * TLS ends in main and the clear bytes are relayed: a TLS session cannot move to another thread.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { GrainbowsError } from '../../shared/errors.js';
import { tlsServerOptions, type TlsMaterial } from '../../shared/tls-options.js';
import type { HandoffStrategy, SettingsValues } from '../../shared/settings-values.js';

export type TlsSettings = Pick<SettingsValues, 'certfile' | 'keyfile' | 'caCerts' | 'certReqs' | 'ciphers' | 'tlsMinVersion'>;

function readPem(flag: string, file: string, cwd: string): Buffer {
  try {
    return readFileSync(path.resolve(cwd, file));
  } catch (error) {
    throw new GrainbowsError('E_TLS', `cannot read --${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
}

/**
 * Reads and checks the certificate, key and CA bundle: a key that does not match the certificate, a file that
 * is not PEM or a cipher list OpenSSL does not know fails here, once, not per connection. Undefined without
 * HTTPS, and then node:tls is not loaded (docs/performance.md, Memory).
 */
export async function loadTlsMaterial(settings: Partial<TlsSettings>, cwd = process.cwd()): Promise<TlsMaterial | undefined> {
  const { certfile, keyfile, caCerts } = settings;
  if (!certfile && !keyfile) {
    if (caCerts) throw new GrainbowsError('E_TLS', '--ca-certs needs HTTPS: give --certfile and --keyfile too');
    return undefined;
  }
  if (!certfile || !keyfile) throw new GrainbowsError('E_TLS', `HTTPS needs both --certfile and --keyfile (only --${certfile ? 'certfile' : 'keyfile'} given)`);
  const material: TlsMaterial = {
    cert: readPem('certfile', certfile, cwd),
    key: readPem('keyfile', keyfile, cwd),
    ...(caCerts ? { ca: readPem('ca-certs', caCerts, cwd) } : {}),
    certReqs: settings.certReqs ?? 'none',
    ...(settings.ciphers ? { ciphers: settings.ciphers } : {}),
    minVersion: settings.tlsMinVersion ?? 'TLSv1.2',
  };
  const { createSecureContext } = await import('node:tls');
  try {
    createSecureContext(tlsServerOptions({ material, handshakeTimeoutMs: 0, alpn: [] }));
  } catch (error) {
    const files = `--certfile ${certfile} with --keyfile ${keyfile}${caCerts ? ` and --ca-certs ${caCerts}` : ''}${settings.ciphers ? ` and --ciphers ${settings.ciphers}` : ''}`;
    throw new GrainbowsError('E_TLS', `${files}: ${(error as Error).message}`, { cause: error });
  }
  return material;
}

/** Where TLS ends, and why there: said once at start-up. */
export interface TlsPlacement {
  where: 'actors' | 'main';
  why: string;
}

/** The actors end TLS wherever they receive sockets unread (source/accept/dispatcher.ts, transfersUnread). */
export function placeTls(handoff: HandoffStrategy, { proxyProtocol, stickySessions }: Pick<SettingsValues, 'proxyProtocol' | 'stickySessions'>): TlsPlacement {
  if (handoff !== 'transfer') return { where: 'main', why: 'the relay hand-off carries the clear bytes' };
  if (proxyProtocol) return { where: 'main', why: '--proxy-protocol: main reads the PROXY header first' };
  if (stickySessions) return { where: 'main', why: "--sticky-sessions: main reads each connection's first request" };
  return { where: 'actors', why: 'each actor runs the handshake on the sockets it owns' };
}
