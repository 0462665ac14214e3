/**
 * Continuous load for lifecycle tests (reload, resize, recycling, stop): `concurrency` clients each send
 * requests back to back until stopped, over keep-alive connections, with every `newConnectionEvery`-th
 * request on a fresh connection (`Connection: close`). Any error or non-200 answer counts as a failure;
 * nothing is retried.
 */
import { Agent, request } from 'undici';
import { until } from './wait.js';

export interface LoadResult {
  ok: number;
  failed: number;
  /** The first few failures, for the assertion message. */
  failures: string[];
  /** How many responses carried each body. */
  bodies: Map<string, number>;
  /** The body of each client's last response. */
  lastBodies: string[];
}

export interface RunningLoad {
  /** Requests answered so far (ok or not). */
  readonly count: number;
  /** Resolves once `count` reaches `n`. */
  reach(n: number, timeoutMs?: number): Promise<void>;
  stop(): Promise<LoadResult>;
}

export function startLoad(
  url: string,
  { concurrency = 16, newConnectionEvery = 5, path = '/', ca }: { concurrency?: number; newConnectionEvery?: number; path?: string; ca?: Buffer } = {},
): RunningLoad {
  // `ca`: an https URL's server certificate is trusted through it.
  const agent = new Agent({ connections: concurrency, keepAliveTimeout: 60_000, ...(ca ? { connect: { ca } } : {}) });
  const result: LoadResult = { ok: 0, failed: 0, failures: [], bodies: new Map(), lastBodies: [] };
  let running = true;
  let sent = 0;
  const client = async (index: number) => {
    while (running) {
      const fresh = ++sent % newConnectionEvery === 0;
      try {
        const response = await request(new URL(path, url), { dispatcher: agent, headers: fresh ? { connection: 'close' } : {} });
        const body = await response.body.text();
        if (response.statusCode === 200) {
          result.ok++;
          result.bodies.set(body, (result.bodies.get(body) ?? 0) + 1);
          result.lastBodies[index] = body;
        } else {
          result.failed++;
          if (result.failures.length < 5) result.failures.push(`${response.statusCode} ${body.slice(0, 80)}`);
        }
      } catch (error) {
        result.failed++;
        if (result.failures.length < 5) result.failures.push(String(error));
      }
    }
  };
  const clients = Array.from({ length: concurrency }, (_, index) => client(index));
  return {
    get count() {
      return result.ok + result.failed;
    },
    async reach(n, timeoutMs = 60_000) {
      await until(() => result.ok + result.failed >= n, `${n} requests`, timeoutMs, 20).catch(() => {
        throw new Error(`load reached only ${result.ok + result.failed} of ${n} requests`);
      });
    },
    async stop() {
      running = false;
      await Promise.all(clients);
      await agent.close();
      return result;
    },
  };
}
