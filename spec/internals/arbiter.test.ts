/**
 * Without a server: the arbiter's command table where there are no signals (source/lifecycle/arbiter.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Arbiter } from '../../source/lifecycle/arbiter.js';
import { createLogger } from '../../shared/log.js';
import type { GrainbowsServer } from '../../source/server.js';
import { until } from '../helpers/wait.js';

describe('the arbiter on Windows', () => {
  // Windows has no HUP/TTIN/TTOU/USR1/USR2: Node reports a closing console as SIGHUP, and it must stop the
  // server, never reload it; Ctrl+Break (SIGBREAK) stops it gracefully too. The signals are emitted here
  // on this process, with a stand-in server that records what the arbiter asks of it.
  for (const signal of ['SIGHUP', 'SIGBREAK'] as const) {
    it(`${signal} stops gracefully and never reloads`, async () => {
      const before = new Set(process.listeners(signal));
      const asked: string[] = [];
      let exited: number | undefined;
      const arbiter = new Arbiter({
        platform: 'win32',
        log: createLogger('error', () => {}),
        rereadConfig: async () => {
          asked.push('reread config');
          return {};
        },
        onExit: (status) => {
          exited = status;
        },
      });
      const standIn = {
        close: async (options: { graceful: boolean }) => void asked.push(`close graceful=${options.graceful}`),
        reload: async () => void asked.push('reload'),
      } as unknown as GrainbowsServer;
      try {
        arbiter.listen();
        arbiter.serve(standIn);
        process.emit(signal as NodeJS.Signals);
        await until(() => exited !== undefined, 'the stop to finish', 500, 10).catch(() => {});
        assert.deepEqual(asked, ['close graceful=true']);
        assert.equal(exited, 0);
      } finally {
        for (const listener of process.listeners(signal)) if (!before.has(listener)) process.off(signal, listener);
      }
    });
  }
});
