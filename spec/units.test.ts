/**
 * Without servers: the app-spec split, bind parsing, the arbiter's Windows signal table, the wire's batches,
 * the shedding slices' clock.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { splitAppSpec } from '../shared/app-spec.js';
import { describeListener, parseBind, unixPathOf } from '../source/accept/bind.js';
import net from 'node:net';
import { Arbiter } from '../source/lifecycle/arbiter.js';
import { createLogger } from '../shared/log.js';
import type { GrainbowsServer } from '../source/server.js';
import { MessageChannel } from 'node:worker_threads';
import { Unpackr } from 'msgpackr';
import { Frame, FrameBatcher, MAX_BATCH_BYTES, decodeBatch } from '../shared/wire.js';
import { openLogDestination } from '../source/log-destination.js';
import { until } from './helpers/wait.js';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { performance } from 'node:perf_hooks';
import { SLICE_BUDGET_MS, SliceBudget } from '../shared/shedding.js';

describe('MODULE[:EXPORT]', () => {
  const cases: Array<[string, string, string]> = [
    ['app.js', 'app.js', 'default'],
    ['app.js:handler', 'app.js', 'handler'],
    ['./srv/app.mjs:$app_1', './srv/app.mjs', '$app_1'],
    ['C:\\srv\\app.js', 'C:\\srv\\app.js', 'default'],
    ['C:\\srv\\app.js:app', 'C:\\srv\\app.js', 'app'],
    ['C:/srv/app.js:app', 'C:/srv/app.js', 'app'],
    ['C:app', 'C:app', 'default'], // a bare drive letter is never split off
    ['app.js:not-an-identifier', 'app.js:not-an-identifier', 'default'],
  ];
  for (const [text, modulePath, exportName] of cases) {
    it(`splits ${text}`, () => assert.deepEqual(splitAppSpec(text), { modulePath, exportName }));
  }
});

describe('--bind', () => {
  it('parses every form gunicorn has', () => {
    assert.deepEqual(parseBind('127.0.0.1:8000'), { kind: 'tcp', host: '127.0.0.1', port: 8000 });
    assert.deepEqual(parseBind('localhost'), { kind: 'tcp', host: 'localhost', port: 8000 });
    assert.deepEqual(parseBind('[::1]:0'), { kind: 'tcp', host: '::1', port: 0 });
    assert.deepEqual(parseBind('[::1]'), { kind: 'tcp', host: '::1', port: 8000 });
    assert.deepEqual(parseBind('unix:/run/app.sock'), { kind: 'unix', path: '/run/app.sock' });
    assert.deepEqual(parseBind('fd://3'), { kind: 'fd', fd: 3 });
  });
  it('refuses what is not a bind address', () => {
    for (const bad of ['', 'a b', '::1:80', '[nope]:80', 'host:port', 'host:70000', 'unix:', 'fd://x']) {
      assert.throws(() => parseBind(bad), { code: 'E_BIND' }, bad);
    }
  });
});

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

describe('the wire between main and actors', () => {
  /** Frames pushed to a FrameBatcher, as the other end of its port decodes them, batch by batch. */
  async function roundTrip(push: (batcher: FrameBatcher) => void): Promise<Array<Array<[number, number, unknown]>>> {
    const { port1, port2 } = new MessageChannel();
    const batches: Array<Array<[number, number, unknown]>> = [];
    port2.on('message', (batch: ArrayBuffer) => {
      const frames: Array<[number, number, unknown]> = [];
      decodeBatch(batch, (type, id, payload) => frames.push([type, id, payload]));
      batches.push(frames);
    });
    push(new FrameBatcher(port1));
    await new Promise((resolve) => setTimeout(resolve, 50));
    port1.close();
    return batches;
  }

  it('carries every payload kind as msgpack that msgpackr decodes, in one batch per turn', async () => {
    const info = { remoteAddress: '127.0.0.1', remotePort: 54321, remoteFamily: 'IPv4', localPort: 8000, encrypted: true };
    const bytes = new Uint8Array([0, 1, 2, 255]);
    const batches = await roundTrip((batcher) => {
      batcher.push(Frame.Open, 1, info);
      batcher.push(Frame.Data, 1, bytes);
      batcher.push(Frame.Data, 0xfffffffe, new Uint8Array(0));
      batcher.push(Frame.Ack, 1, 65536);
      batcher.push(Frame.Ack, 2, 0xffffffff);
      batcher.push(Frame.Ack, 3, -1); // not a uint32: msgpackr packs it
      batcher.push(Frame.AccessLog, 0, '127.0.0.1 "GET /ünïcødé 😀" 200');
      batcher.push(Frame.End, 1);
      batcher.push(Frame.Close, 1);
    });
    assert.equal(batches.length, 1);
    const [frames] = batches;
    assert.deepEqual(
      frames.map(([type, id]) => [type, id]),
      [
        [1, 1],
        [2, 1],
        [2, 0xfffffffe],
        [5, 1],
        [5, 2],
        [5, 3],
        [7, 0],
        [3, 1],
        [4, 1],
      ],
    );
    assert.deepEqual(frames[0][2], info);
    assert.deepEqual([...(frames[1][2] as Uint8Array)], [0, 1, 2, 255]);
    assert.equal((frames[2][2] as Uint8Array).byteLength, 0);
    assert.deepEqual(
      frames.slice(3, 6).map(([, , payload]) => payload),
      [65536, 0xffffffff, -1],
    );
    assert.equal(frames[6][2], '127.0.0.1 "GET /ünïcødé 😀" 200');
    assert.deepEqual(
      frames.slice(7).map(([, , payload]) => payload),
      [null, null],
    );
  });

  it('keeps each structured payload of a batch intact (several connections open in one turn)', async () => {
    const infos = [1, 2, 3].map((n) => ({ remoteAddress: `127.0.0.${n}`, remotePort: 40000 + n, localPort: 8000 }));
    const batches = await roundTrip((batcher) => {
      infos.forEach((info, i) => batcher.push(Frame.Open, i + 1, info));
      batcher.push(Frame.Ack, 1, -5); // msgpackr packs this too, after the infos
    });
    assert.deepEqual(batches, [
      [
        [1, 1, infos[0]],
        [1, 2, infos[1]],
        [1, 3, infos[2]],
        [5, 1, -5],
      ],
    ]);
  });

  it('writes bytes, counts, strings and empty payloads as plain msgpack', async () => {
    const { port1, port2 } = new MessageChannel();
    const raw: ArrayBuffer[] = [];
    port2.on('message', (batch: ArrayBuffer) => raw.push(batch.slice(0)));
    const batcher = new FrameBatcher(port1);
    batcher.push(Frame.Data, 7, new Uint8Array([104, 105]));
    batcher.push(Frame.Ack, 7, 123456);
    batcher.push(Frame.AccessLog, 0, 'a line: ünïcødé');
    batcher.push(Frame.End, 7);
    batcher.flush();
    await new Promise((resolve) => setTimeout(resolve, 20));
    port1.close();
    assert.equal(raw.length, 1);
    const inPlace: unknown[] = [];
    decodeBatch(raw[0], (type, id, payload) => inPlace.push(type, id, payload));
    assert.deepEqual(inPlace, new Unpackr({ useRecords: false }).unpack(Buffer.from(raw[0])));
    assert.deepEqual(inPlace, [Frame.Data, 7, Buffer.from('hi'), Frame.Ack, 7, 123456, Frame.AccessLog, 0, 'a line: ünïcødé', Frame.End, 7, null]);
  });

  it('posts a batch early once it holds MAX_BATCH_BYTES of data, bytes intact', async () => {
    const chunk = new Uint8Array(200 * 1024).map((_, i) => i % 251);
    const batches = await roundTrip((batcher) => {
      for (let id = 1; id <= 4; id++) batcher.push(Frame.Data, id, chunk);
    });
    // 3 × 200 KiB reach the 512 KiB cap: posted at once; the fourth goes at the end of the turn.
    assert.deepEqual(
      batches.map((frames) => frames.length),
      [3, 1],
    );
    assert.ok(MAX_BATCH_BYTES <= 3 * chunk.byteLength);
    for (const frames of batches) for (const [, , payload] of frames) assert.deepEqual(payload, Buffer.from(chunk));
  });
});

describe('log files', () => {
  it('hold every line written so far once flushed() resolves (-D reports ready only then)', async () => {
    const file = path.join(mkdtempSync(path.join(tmpdir(), 'grainbows-log-')), 'error.log');
    const destination = openLogDestination(file, 'stderr');
    try {
      for (let i = 0; i < 2000; i++) destination.write(`line ${i} ${'x'.repeat(40)}`);
      await destination.flushed();
      const lines = readFileSync(file, 'utf8').split('\n').filter(Boolean);
      assert.equal(lines.length, 2000);
      assert.equal(lines[1999].slice(0, 9), 'line 1999');
    } finally {
      await destination.close();
    }
  });
});

describe('shedding slices', () => {
  it('a slice budget is not spent when it starts, and is once SLICE_BUDGET_MS have passed', () => {
    const budget = new SliceBudget();
    assert.equal(budget.spent(), false);
    const started = performance.now();
    while (performance.now() - started < SLICE_BUDGET_MS) {
      // a refusal that takes the whole budget
    }
    assert.equal(budget.spent(), true);
  });
});

describe('listeners as the log names them', () => {
  it(
    'a unix socket opened from a descriptor (systemd, a binary upgrade) by its path, not fd://N',
    { skip: process.platform !== 'linux' && '/proc/net/unix is Linux only' },
    async () => {
      const socketPath = path.join(mkdtempSync(path.join(tmpdir(), 'grainbows-bind-')), 'app.sock');
      const bound = net.createServer();
      await new Promise<void>((resolve) => bound.listen(socketPath, resolve));
      const fd = (bound as unknown as { _handle: { fd: number } })._handle.fd;
      try {
        assert.equal(unixPathOf(fd), socketPath);
        // What Node reports for a server opened on such a descriptor: no address, only its handle's descriptor.
        const fromDescriptor = { address: () => null, _handle: { fd } } as unknown as net.Server;
        assert.equal(describeListener(fromDescriptor, { kind: 'fd', fd }), `unix:${socketPath}`);
        assert.equal(describeListener(fromDescriptor, { kind: 'handle', was: 'unix:/elsewhere', inherited: undefined as never }), `unix:${socketPath}`);
        const unknown = { address: () => null, _handle: { fd: -1 } } as unknown as net.Server;
        assert.equal(describeListener(unknown, { kind: 'fd', fd: 7 }), 'fd://7');
      } finally {
        bound.close();
      }
    },
  );
});
