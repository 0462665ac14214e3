/**
 * Facing the network: HTTPS ended in the main thread (--certfile/--keyfile), and which peers may speak for
 * the client through X-Forwarded-* and Forwarded (--forwarded-allow-ips).
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { X509Certificate } from 'node:crypto';
import { describe, it } from 'node:test';
import { Agent, fetch as undiciFetch } from 'undici';
import { fixture, runCli, strategies, withServer } from './helpers/servers.js';

/** A self-signed certificate for 127.0.0.1, made with openssl. */
function makeCertificate(name: string): { certfile: string; keyfile: string } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'grainbows-tls-'));
  const certfile = path.join(dir, `${name}.crt`);
  const keyfile = path.join(dir, `${name}.key`);
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      `/CN=${name}`,
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyfile,
      '-out',
      certfile,
    ],
    { stdio: 'ignore' },
  );
  return { certfile, keyfile };
}

/** The fingerprint of the certificate the server presents to a new connection. */
function presentedFingerprint(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false }, () => {
      resolve(socket.getPeerCertificate().fingerprint256);
      socket.end();
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no TLS handshake within 10 s')));
    socket.on('error', reject);
  });
}

const fingerprintOf = (certfile: string) => new X509Certificate(readFileSync(certfile)).fingerprint256;

interface EchoedHeaders {
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  encrypted: boolean;
}

const forwarding = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', forwarded: 'for=203.0.113.9;proto=https', 'x-real-ip': '203.0.113.9' };

for (const strategy of await strategies()) {
  describe(`HTTPS (${strategy})`, () => {
    const first = makeCertificate('first');
    const agent = new Agent({ connect: { ca: readFileSync(first.certfile) } });

    it('serves listener and Fetch apps over TLS, and both see an encrypted connection', async () => {
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, ...first }, async ({ url, server }) => {
        assert.match(url, /^https:\/\/127\.0\.0\.1:\d+$/);
        assert.deepEqual(server.urls, [url]);
        const echoed = (await (await undiciFetch(`${url}/headers`, { dispatcher: agent })).json()) as EchoedHeaders;
        assert.equal(echoed.encrypted, true);
        const body = Buffer.alloc(300_000, 'z');
        const echo = await undiciFetch(`${url}/echo`, { method: 'POST', body, dispatcher: agent });
        assert.equal((await echo.arrayBuffer()).byteLength, body.byteLength, 'a large body crosses TLS and the relay both ways');
      });
      await withServer({ app: `${fixture('fetch-function.js')}:handler`, handoff: strategy, ...first }, async ({ url }) => {
        const whoami = (await (await undiciFetch(`${url}/whoami`, { dispatcher: agent })).json()) as { url: string };
        assert.equal(whoami.url, `${url}/whoami`, 'request.url has the https scheme');
      });
    });

    it('presents the new certificate after a reload, without dropping the listener', async () => {
      const second = makeCertificate('second');
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, ...first }, async ({ port, server }) => {
        assert.equal(await presentedFingerprint(port), fingerprintOf(first.certfile));
        await server.reload(second);
        assert.equal(await presentedFingerprint(port), fingerprintOf(second.certfile));
      });
    });
  });

  describe(`--forwarded-allow-ips (${strategy})`, () => {
    it('passes X-Forwarded-* and Forwarded from a trusted peer (127.0.0.1 by default)', async () => {
      await withServer({ app: fixture('behaviours.js'), handoff: strategy }, async ({ url }) => {
        const echoed = (await (await fetch(`${url}/headers`, { headers: forwarding })).json()) as EchoedHeaders;
        assert.equal(echoed.headers['x-forwarded-for'], '203.0.113.9');
        assert.equal(echoed.headers.forwarded, 'for=203.0.113.9;proto=https');
        assert.equal(echoed.url, '/headers', 'listener apps keep the origin-form target');
      });
      await withServer({ app: `${fixture('fetch-function.js')}:handler`, handoff: strategy, forwardedAllowIps: '10.0.0.0/8, 127.0.0.0/8' }, async ({ url }) => {
        const whoami = (await (await fetch(`${url}/whoami`, { headers: forwarding })).json()) as { url: string; forwardedFor: string };
        assert.equal(whoami.forwardedFor, '203.0.113.9');
        assert.equal(whoami.url, `${url.replace('http:', 'https:')}/whoami`, "a trusted proxy's https scheme reaches request.url");
      });
    });

    it("refuses a trusted peer's request whose scheme headers disagree (400), and strips them from an untrusted one", async () => {
      const conflicting = { 'x-forwarded-proto': 'https', 'x-forwarded-ssl': 'off' };
      await withServer({ app: fixture('behaviours.js'), handoff: strategy }, async ({ url }) => {
        const refused = await fetch(`${url}/headers`, { headers: conflicting });
        assert.equal(refused.status, 400);
        assert.match(await refused.text(), /X-Forwarded-Proto, X-Forwarded-Protocol and X-Forwarded-Ssl headers disagree/);
        const agreeing = await fetch(`${url}/headers`, { headers: { 'x-forwarded-proto': 'https', 'x-forwarded-ssl': 'on' } });
        assert.equal(agreeing.status, 200);
      });
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, forwardedAllowIps: '192.168.0.1' }, async ({ url }) => {
        const stripped = await fetch(`${url}/headers`, { headers: conflicting });
        assert.equal(stripped.status, 200);
        assert.equal(((await stripped.json()) as EchoedHeaders).headers['x-forwarded-ssl'], undefined);
      });
    });

    it('removes them from a peer that is not trusted, in headers and rawHeaders alike', async () => {
      await withServer({ app: fixture('behaviours.js'), handoff: strategy, forwardedAllowIps: '10.0.0.0/8,::1' }, async ({ url }) => {
        const echoed = (await (await fetch(`${url}/headers`, { headers: { ...forwarding, 'x-kept': 'yes' } })).json()) as EchoedHeaders;
        for (const name of Object.keys(forwarding)) assert.equal(echoed.headers[name], undefined, name);
        assert.deepEqual(
          echoed.rawHeaders
            .filter((_, i) => i % 2 === 0)
            .map((name) => name.toLowerCase())
            .filter((name) => name in forwarding),
          [],
        );
        assert.equal(echoed.headers['x-kept'], 'yes', 'other headers stay');
      });
      await withServer({ app: `${fixture('fetch-function.js')}:handler`, handoff: strategy, forwardedAllowIps: '192.168.0.1' }, async ({ url }) => {
        const whoami = (await (await fetch(`${url}/whoami`, { headers: forwarding })).json()) as { url: string; forwardedFor: string | null };
        assert.equal(whoami.forwardedFor, null);
        assert.equal(whoami.url, `${url}/whoami`, 'an untrusted peer cannot claim https');
      });
    });
  });
}

describe('HTTPS and forwarding settings at the CLI', () => {
  const app = fixture('behaviours.js');
  it('refuses a missing certificate, a lone --keyfile and a key that does not match, with status 2 and one line', async () => {
    const first = makeCertificate('first');
    const other = makeCertificate('other');
    const cases: Array<[string[], RegExp]> = [
      [['--certfile', '/nonexistent/cert.pem', '--keyfile', first.keyfile], /cannot read --certfile \/nonexistent\/cert\.pem: ENOENT/],
      [['--keyfile', first.keyfile], /HTTPS needs both --certfile and --keyfile \(only --keyfile given\)/],
      [['--certfile', first.certfile, '--keyfile', other.keyfile], /--certfile .* with --keyfile .*: .*(mismatch|key)/i],
    ];
    for (const [args, message] of cases) {
      const result = await runCli(['-b', '127.0.0.1:0', ...args, app]);
      assert.equal(result.status, 2, result.stderr);
      const lines = result.stderr.trim().split('\n');
      assert.equal(lines.length, 1, result.stderr);
      assert.match(lines[0], message);
    }
  });

  it('refuses a forwarded-allow-ips entry that is not an address or network', async () => {
    for (const [value, message] of [
      ['10.0.0.0/33', /'10\.0\.0\.0\/33' has a bad prefix length/],
      ['proxy.local', /'proxy\.local' is not an IP address or network/],
    ] as const) {
      const result = await runCli(['-b', '127.0.0.1:0', '--forwarded-allow-ips', value, app]);
      assert.equal(result.status, 2, result.stderr);
      assert.match(result.stderr.trim(), message);
    }
  });
});
