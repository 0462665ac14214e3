/**
 * HTTPS: where TLS ends (in the actor that owns the socket with transfer, in main with the relay), what the
 * app reads of the session, client certificates, the TLS settings, certificate renewal on reload, and that no
 * client, however it leaves, holds a connection or the stop.
 */
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import tls from 'node:tls';
import { describe, it } from 'node:test';
import { Agent, fetch as undiciFetch } from 'undici';
import { fixture, runCli, startCli, strategies, withServer } from './helpers/servers.js';
import { fingerprintOf, makeAuthority, makeCertificate, presentedFingerprint } from './helpers/certificates.js';
import { startLoad } from './helpers/load.js';
import { until } from './helpers/wait.js';

interface EchoedHeaders {
  encrypted: boolean;
}

interface TlsFacts {
  socket: string;
  encrypted: boolean;
  authorized: boolean | null;
  peer: string | null;
  protocol: string | null;
  httpVersion: string;
}

/** One request over a fresh TLS connection with these client options; rejects when the handshake fails. */
function requestOver(port: number, options: tls.ConnectionOptions, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => {
      socket.write(`GET ${path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n`);
    });
    let received = '';
    socket.setEncoding('utf8');
    socket.on('data', (chunk: string) => (received += chunk));
    socket.on('error', reject);
    socket.on('close', () => {
      const [head, ...body] = received.split('\r\n\r\n');
      const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1]);
      if (!status) reject(new Error(`no response (got ${JSON.stringify(received.slice(0, 80))})`));
      else resolve({ status, body: body.join('\r\n\r\n') });
    });
    socket.setTimeout(10_000, () => socket.destroy(new Error('no answer within 10 s')));
  });
}

async function factsOver(port: number, options: tls.ConnectionOptions): Promise<TlsFacts> {
  const { status, body } = await requestOver(port, options);
  assert.equal(status, 200, body);
  return JSON.parse(body) as TlsFacts;
}

/** Sockets on the server's side of `port` that still hold a descriptor of this process (ss -p). */
function heldServerSockets(port: number): string[] {
  const out = execFileSync('ss', ['-Htnp', 'sport', '=', `:${port}`], { encoding: 'utf8' });
  return out.split('\n').filter((line) => line.includes(`pid=${process.pid},`));
}

const haveSs = spawnSync('ss', ['-V']).status === 0;
const haveWrk = spawnSync('wrk', ['-v']).status !== null;

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

    it(`ends TLS in the ${strategy === 'transfer' ? 'actor that owns the socket' : 'main thread'}, and the app reads the session from its socket`, async () => {
      const { certfile, keyfile } = first;
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, certfile, keyfile }, async ({ port, server, logs }) => {
        assert.equal(server.tlsEndsIn, strategy === 'transfer' ? 'actors' : 'main');
        assert.ok(logs.some((line) => line.includes(`TLS ends in the ${strategy === 'transfer' ? 'actors' : 'main thread'}`)));
        const facts = await factsOver(port, { ca: readFileSync(certfile) });
        // A real TLSSocket in the actor; the relay's stand-in, which main fills with the session, otherwise.
        assert.equal(facts.socket, strategy === 'transfer' ? 'TLSSocket' : 'RelaySocket');
        assert.equal(facts.encrypted, true);
        assert.equal(facts.protocol, 'TLSv1.3');
        assert.equal(facts.peer, null, 'no client certificate was asked for');
      });
      if (strategy === 'transfer') {
        // Main reads the PROXY header, so it must read the connection: TLS ends there, whatever the hand-off.
        await withServer({ app: fixture('tls-facts.js'), handoff: strategy, certfile, keyfile, proxyProtocol: true }, async ({ port, server }) => {
          assert.equal(server.tlsEndsIn, 'main');
          assert.equal((await factsOver(port, { ca: readFileSync(certfile) })).socket, 'RelaySocket');
        });
      }
    });

    it('verifies client certificates against --ca-certs: required refuses a client without one, optional serves it and says so', async () => {
      const authority = makeAuthority();
      const trust = { ca: readFileSync(authority.ca) };
      const asClient = { ...trust, cert: readFileSync(authority.client.certfile), key: readFileSync(authority.client.keyfile) };
      const asStranger = { ...trust, cert: readFileSync(authority.stranger.certfile), key: readFileSync(authority.stranger.keyfile) };
      const base = { app: fixture('tls-facts.js'), handoff: strategy, ...authority.server, caCerts: authority.ca };
      await withServer({ ...base, certReqs: 'required' }, async ({ port, server }) => {
        const facts = await factsOver(port, asClient);
        assert.equal(facts.authorized, true);
        assert.equal(facts.peer, 'client', "the app reads the client's certificate");
        await assert.rejects(requestOver(port, trust), 'a client without a certificate fails the handshake');
        await assert.rejects(requestOver(port, asStranger), 'a certificate no CA vouches for fails the handshake');
        await until(async () => (await server.stats()).awaitingHead === 0, 'the refused handshakes to be let go');
      });
      await withServer({ ...base, certReqs: 'optional' }, async ({ port }) => {
        assert.deepEqual(await factsOver(port, trust).then(({ authorized, peer }) => ({ authorized, peer })), { authorized: false, peer: null });
        assert.deepEqual(await factsOver(port, asClient).then(({ authorized, peer }) => ({ authorized, peer })), { authorized: true, peer: 'client' });
        const stranger = await factsOver(port, asStranger);
        assert.equal(stranger.authorized, false, 'served, and the app can tell the certificate did not verify');
        assert.equal(stranger.peer, 'stranger');
      });
    });

    it('--tls-min-version TLSv1.3 refuses a TLS 1.2 client; --ciphers chooses the TLS 1.2 suite', async () => {
      const { certfile, keyfile } = first;
      const ca = readFileSync(certfile);
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, certfile, keyfile, tlsMinVersion: 'TLSv1.3' }, async ({ port }) => {
        await assert.rejects(requestOver(port, { ca, maxVersion: 'TLSv1.2' }));
        assert.equal((await factsOver(port, { ca })).protocol, 'TLSv1.3');
      });
      const suite = 'ECDHE-ECDSA-AES256-GCM-SHA384';
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, certfile, keyfile, ciphers: suite }, async ({ port }) => {
        const cipher = await new Promise<string>((resolve, reject) => {
          const socket = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost', maxVersion: 'TLSv1.2' }, () => {
            resolve(socket.getCipher().standardName === 'TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384' ? suite : socket.getCipher().name);
            socket.end();
          });
          socket.on('error', reject);
        });
        assert.equal(cipher, suite);
        await assert.rejects(
          requestOver(port, { ca, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }),
          'a client offering no chosen suite fails',
        );
      });
    });

    it('leaves no connection behind: clients that leave before, during and after the handshake, mid-head and mid-request; a stalled handshake ends at --header-timeout', async () => {
      const { certfile, keyfile } = first;
      const ca = readFileSync(certfile);
      await withServer(
        { app: fixture('tls-facts.js'), handoff: strategy, certfile, keyfile, headerTimeout: 1, gracefulTimeout: 30 },
        async ({ port, server }) => {
          const closed = (socket: net.Socket) => new Promise<void>((resolve) => socket.once('close', () => resolve()));
          const leavers: Array<Promise<void>> = [];
          // 1. Connects and sends its FIN before any handshake byte.
          const silent = net.connect(port, '127.0.0.1', () => silent.end());
          silent.on('error', () => {});
          leavers.push(closed(silent));
          // 2. Sends the first bytes of a ClientHello, then its FIN.
          const partial = net.connect(port, '127.0.0.1', () => partial.end(Buffer.from('1603010200010001fc0303', 'hex')));
          partial.on('error', () => {});
          leavers.push(closed(partial));
          // 3. Finishes the handshake, then leaves without a request.
          const secureThenGone = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => secureThenGone.destroy());
          leavers.push(closed(secureThenGone));
          // 4. Half a request head, then its FIN.
          const halfHead = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => halfHead.end('GET / HTTP/1.1\r\nHost: x\r\n'));
          halfHead.on('error', () => {});
          halfHead.resume(); // the server's 408 is read, so the client sees the end and the close
          leavers.push(closed(halfHead));
          // 5. Resets while the app is still answering.
          const midRequest = tls.connect({ host: '127.0.0.1', port, ca, servername: 'localhost' }, () => {
            midRequest.write('GET /slow HTTP/1.1\r\nHost: x\r\n\r\n');
            setTimeout(() => midRequest.destroy(), 50);
          });
          leavers.push(closed(midRequest));
          await Promise.all(leavers);
          // 6. Starts a handshake and never finishes it: the server ends it at the header deadline.
          const stalled = net.connect(port, '127.0.0.1', () => stalled.write(Buffer.from('1603010200010001fc0303', 'hex')));
          stalled.on('error', () => {});
          stalled.resume();
          const stalledAt = Date.now();
          await closed(stalled);
          const stalledFor = Date.now() - stalledAt;
          assert.ok(stalledFor >= 800 && stalledFor < 5000, `the stalled handshake was ended after ${stalledFor} ms (--header-timeout 1)`);
          await until(async () => {
            const stats = await server.stats();
            return stats.awaitingHead === 0 && stats.actors.every((actor) => actor.connections === 0 && actor.requestsInFlight === 0);
          }, 'every connection to be let go');
          if (haveSs) await until(() => heldServerSockets(port).length === 0, `no descriptor on :${port} (ss: ${heldServerSockets(port).join(' | ')})`);
          // Still serving, and nothing holds the stop: a graceful close returns at once, not after 30 s.
          assert.equal((await factsOver(port, { ca })).encrypted, true);
          const stopping = Date.now();
          await server.close();
          assert.ok(Date.now() - stopping < 3000, `close() took ${Date.now() - stopping} ms`);
        },
      );
    });

    it('renews the certificate on reload under load with no failed request; a bad new certificate keeps the old one', async () => {
      const second = makeCertificate('second');
      const ca = Buffer.concat([readFileSync(first.certfile), readFileSync(second.certfile)]);
      await withServer({ app: fixture('tls-facts.js'), handoff: strategy, ...first }, async ({ url, port, server }) => {
        const load = startLoad(url, { concurrency: 8, newConnectionEvery: 3, ca });
        await load.reach(100);
        await server.reload(second);
        const after = load.count;
        await load.reach(after + 100);
        const result = await load.stop();
        assert.equal(result.failed, 0, result.failures.join('\n'));
        assert.equal(await presentedFingerprint(port), fingerprintOf(second.certfile));
        const broken = makeCertificate('broken');
        writeFileSync(broken.certfile, 'not a certificate');
        await assert.rejects(server.reload(broken), /--certfile .*broken\.crt/);
        assert.equal(await presentedFingerprint(port), fingerprintOf(second.certfile), 'the old certificate is still served');
      });
    });
  });
}

describe('HTTPS at the CLI', () => {
  const app = fixture('tls-facts.js');
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

  it('refuses a --ciphers list OpenSSL does not know, a bad --cert-reqs and --ca-certs without HTTPS, with one line', async () => {
    const { certfile, keyfile } = makeCertificate('first');
    const cases: Array<[string[], number, RegExp]> = [
      [['--certfile', certfile, '--keyfile', keyfile, '--ciphers', 'NOT-A-CIPHER'], 2, /--ciphers NOT-A-CIPHER: .*cipher/i],
      [['--certfile', certfile, '--keyfile', keyfile, '--cert-reqs', 'sometimes'], 2, /--cert-reqs must be one of none, optional, required, not 'sometimes'/],
      [['--ca-certs', certfile], 2, /--ca-certs needs HTTPS/],
    ];
    for (const [args, status, message] of cases) {
      const result = await runCli(['-b', '127.0.0.1:0', ...args, app]);
      assert.equal(result.status, status, result.stderr);
      assert.equal(result.stderr.trim().split('\n').length, 1, result.stderr);
      assert.match(result.stderr, message);
    }
    // gunicorn's numbers mean the same: 2 is required.
    const printed = await runCli(['--certfile', certfile, '--keyfile', keyfile, '--cert-reqs', '2', '--print-config', app]);
    assert.match(printed.stdout, /cert_?reqs.*required/i, printed.stdout);
  });

  for (const handoff of ['transfer', 'relay'] as const) {
    it(
      `stops on TERM at once after wrk opened and closed TLS connections (--handoff ${handoff})`,
      { skip: haveWrk ? false : 'wrk is not installed' },
      async (t) => {
        if (handoff === 'transfer' && !(await strategies()).includes('transfer')) return t.skip('no transfer hand-off here');
        const { certfile, keyfile } = makeCertificate('first');
        const server = await startCli([
          '-b',
          '127.0.0.1:0',
          '-w',
          '2',
          '--handoff',
          handoff,
          '--graceful-timeout',
          '5',
          '--certfile',
          certfile,
          '--keyfile',
          keyfile,
          app,
        ]);
        const wrk = spawnSync('wrk', ['-t1', '-c32', '-d2s', '-H', 'Connection: close', server.url + '/'], { encoding: 'utf8', timeout: 20_000 });
        assert.match(wrk.stdout, /(\d+) requests in/, wrk.stdout + wrk.stderr);
        const stopping = Date.now();
        const result = await server.stop('SIGTERM');
        const took = Date.now() - stopping;
        assert.equal(result.status, 0, server.output());
        assert.ok(took < 4000, `TERM took ${took} ms (--graceful-timeout 5): a connection held the stop\n${server.output()}`);
        assert.doesNotMatch(server.output(), /graceful timeout/);
      },
    );
  }
});
