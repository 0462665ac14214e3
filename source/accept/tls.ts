/**
 * HTTPS (`--certfile`, `--keyfile`): TLS ends in the main thread, where the listening socket is, and the
 * actor gets the clear bytes over the relay, whatever the hand-off strategy (a TLS session cannot move to
 * another thread). The actor's socket says `encrypted`, so apps build `https:` URLs and Express's
 * `req.secure` holds.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import tls from 'node:tls';
import { GrainbowsError } from '../../shared/errors.js';

export interface TlsFiles {
  certfile: string;
  keyfile: string;
}

export interface TlsMaterial {
  cert: Buffer;
  key: Buffer;
}

function readPem(flag: string, file: string, cwd: string): Buffer {
  try {
    return readFileSync(path.resolve(cwd, file));
  } catch (error) {
    throw new GrainbowsError('E_TLS', `cannot read --${flag} ${file}: ${(error as NodeJS.ErrnoException).code ?? String(error)}`, { cause: error });
  }
}

/** Reads and checks the certificate and key (a key that does not match the certificate fails here, not per connection). */
export function loadTlsMaterial(files: Partial<TlsFiles>, cwd = process.cwd()): TlsMaterial | undefined {
  if (!files.certfile && !files.keyfile) return undefined;
  if (!files.certfile || !files.keyfile)
    throw new GrainbowsError('E_TLS', `HTTPS needs both --certfile and --keyfile (only --${files.certfile ? 'certfile' : 'keyfile'} given)`);
  const material = { cert: readPem('certfile', files.certfile, cwd), key: readPem('keyfile', files.keyfile, cwd) };
  try {
    tls.createSecureContext(material);
  } catch (error) {
    throw new GrainbowsError('E_TLS', `--certfile ${files.certfile} with --keyfile ${files.keyfile}: ${(error as Error).message}`, { cause: error });
  }
  return material;
}

/** Server options for a TLS listener: HTTP/1.1 only, and half-open like the plain listeners. */
export function tlsServerOptions(material: TlsMaterial): tls.TlsOptions {
  return { ...material, ALPNProtocols: ['http/1.1'], allowHalfOpen: true };
}
