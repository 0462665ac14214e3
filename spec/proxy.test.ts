/**
 * Which peers may speak for the client through X-Forwarded-* and Forwarded (--forwarded-allow-ips). HTTPS is
 * spec/tls.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { fixture, runCli, strategies, withServer } from './helpers/servers.js';

interface EchoedHeaders {
  url: string;
  headers: Record<string, string>;
  rawHeaders: string[];
  encrypted: boolean;
}

const forwarding = { 'x-forwarded-for': '203.0.113.9', 'x-forwarded-proto': 'https', forwarded: 'for=203.0.113.9;proto=https', 'x-real-ip': '203.0.113.9' };

for (const strategy of await strategies()) {
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

describe('forwarding settings at the CLI', () => {
  const app = fixture('behaviours.js');
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
