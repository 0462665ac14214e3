/** Certificates for the HTTPS tests, made with openssl in a temporary directory (EC P-256, valid two days). */
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { X509Certificate } from 'node:crypto';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';

export interface CertificateFiles {
  certfile: string;
  keyfile: string;
}

const KEY = ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes'];

function openssl(args: string[]): void {
  execFileSync('openssl', args, { stdio: 'ignore' });
}

function tempDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'grainbows-tls-'));
}

/** A self-signed certificate for 127.0.0.1 and localhost. */
export function makeCertificate(name: string): CertificateFiles {
  const dir = tempDir();
  const certfile = path.join(dir, `${name}.crt`);
  const keyfile = path.join(dir, `${name}.key`);
  openssl([
    'req',
    '-x509',
    ...KEY,
    '-days',
    '2',
    '-subj',
    `/CN=${name}`,
    '-addext',
    'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout',
    keyfile,
    '-out',
    certfile,
  ]);
  return { certfile, keyfile };
}

/** A CA, and a server and a client certificate it signed: for client-certificate verification. */
export function makeAuthority(): { ca: string; server: CertificateFiles; client: CertificateFiles; stranger: CertificateFiles } {
  const dir = tempDir();
  const ca = path.join(dir, 'ca.crt');
  const caKey = path.join(dir, 'ca.key');
  openssl(['req', '-x509', ...KEY, '-days', '2', '-subj', '/CN=grainbows test CA', '-keyout', caKey, '-out', ca]);
  const signed = (name: string, extension: string): CertificateFiles => {
    const certfile = path.join(dir, `${name}.crt`);
    const keyfile = path.join(dir, `${name}.key`);
    const request = path.join(dir, `${name}.csr`);
    const extfile = path.join(dir, `${name}.ext`);
    openssl(['req', '-new', ...KEY, '-subj', `/CN=${name}`, '-keyout', keyfile, '-out', request]);
    execFileSync('sh', ['-c', `printf '%s\\n' "$1" > "$2"`, 'sh', extension, extfile]);
    openssl(['x509', '-req', '-in', request, '-CA', ca, '-CAkey', caKey, '-CAcreateserial', '-days', '2', '-extfile', extfile, '-out', certfile]);
    return { certfile, keyfile };
  };
  return {
    ca,
    server: signed('server', 'subjectAltName=IP:127.0.0.1,DNS:localhost'),
    client: signed('client', 'extendedKeyUsage=clientAuth'),
    // Self-signed: a client certificate no configured CA vouches for.
    stranger: makeCertificate('stranger'),
  };
}

export const fingerprintOf = (certfile: string): string => new X509Certificate(readFileSync(certfile)).fingerprint256;

/** The fingerprint of the certificate the server presents to a new connection. */
export function presentedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no TLS handshake within 10 s')));
    socket.on('error', reject);
  });
}
