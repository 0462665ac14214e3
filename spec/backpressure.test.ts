/**
 * Memory stays bounded per connection both ways: a client that stops reading a 64 MiB response,
 * and a client uploading 64 MiB as fast as it can to an app that does not read yet, each grow the server
 * process by less than 8 MB. And an unread request body is drained within a cap on keep-alive connections.
 * The server runs as the real CLI in a child process, so its resident memory is its own.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, it, before, after } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { fixture, startCli, strategies, type RunningCli } from './helpers/servers.js';
import { exchange, parseResponses } from './helpers/wire.js';
import { until } from './helpers/wait.js';

const MiB = 1024 * 1024;

/** Resident memory of a process, from /proc (Linux: where CI runs). */
function residentBytes(pid: number): number {
  const match = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!match) throw new Error(`no VmRSS for ${pid}`);
  return Number(match[1]) * 1024;
}

/** RSS once it stops moving (it settles after GC): the median of a few samples. */
async function settledResident(pid: number): Promise<number> {
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(residentBytes(pid));
    await sleep(100);
  }
  return samples.sort((a, b) => a - b)[2];
}

function connect(port: number): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const socket = net.connect(port, '127.0.0.1', () => resolve(socket));
    socket.on('error', reject);
  });
}

for (const strategy of await strategies()) {
  describe(`backpressure and bounded memory (${strategy})`, { skip: process.platform !== 'linux' && 'reads /proc' }, () => {
    let cli: RunningCli;
    let port: number;
    let pid: number;
    before(async () => {
      cli = await startCli(['-b', '127.0.0.1:0', '-w', '1', '--handoff', strategy, fixture('behaviours.js')]);
      port = Number(new URL(cli.url).port);
      pid = cli.pid;
      // Warm up: the paths below, small, so their code is compiled and their buffers allocated once.
      await exchange(port, 'GET /big?mb=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { timeoutMs: 5000 });
      await exchange(port, `POST /read-later?gap=10 HTTP/1.1\r\nHost: x\r\nContent-Length: ${MiB}\r\nConnection: close\r\n\r\n${'x'.repeat(MiB)}`, {
        timeoutMs: 5000,
        responses: 1,
      });
    });
    after(() => cli.stop('SIGTERM'));

    it('a client that stops reading a 64 MiB response grows the server by less than 8 MB', async (t) => {
      const baseline = await settledResident(pid);
      const stalled = await connect(port);
      stalled.pause();
      stalled.write('GET /big?mb=64 HTTP/1.1\r\nHost: x\r\n\r\n');
      // Let the app write until backpressure stops it.
      let written = -1;
      for (;;) {
        await sleep(300);
        const now = Number(
          (await exchange(port, 'GET /progress HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', { responses: 1 })).responses[0].body.toString(),
        );
        if (now === written) break;
        written = now;
      }
      const grown = (await settledResident(pid)) - baseline;
      assert.ok(written < 32 * MiB, `the app stopped writing after ${(written / MiB).toFixed(1)} MiB`);
      assert.ok(grown < 8 * MiB, `the server grew by ${(grown / MiB).toFixed(1)} MB (app wrote ${(written / MiB).toFixed(1)} MiB)`);
      t.diagnostic(`app wrote ${(written / MiB).toFixed(1)} MiB before backpressure stopped it; server RSS grew ${(grown / MiB).toFixed(1)} MB`);
      stalled.destroy();
    });

    it('a client uploading 64 MiB to an app that does not read yet grows the server by less than 8 MB, and every byte arrives', async (t) => {
      const baseline = await settledResident(pid);
      const uploader = await connect(port);
      let raw = Buffer.alloc(0);
      uploader.on('data', (chunk: Buffer) => (raw = Buffer.concat([raw, chunk])));
      uploader.write(`POST /read-later?gap=2500 HTTP/1.1\r\nHost: x\r\nContent-Length: ${64 * MiB}\r\n\r\n`);
      // Send as fast as the connection takes it, keeping at most 1 MiB queued on our side.
      const piece = Buffer.alloc(256 * 1024, 97);
      let sent = 0;
      const sending = (async () => {
        while (sent < 64 * MiB) {
          if (uploader.writableLength < MiB) {
            uploader.write(piece);
            sent += piece.length;
          } else await sleep(2);
        }
      })();
      await sleep(2000);
      const grown = (await settledResident(pid)) - baseline;
      const sentWhileBlocked = sent;
      assert.ok(sentWhileBlocked < 48 * MiB, `the upload is held back: ${(sentWhileBlocked / MiB).toFixed(1)} MiB sent while the app reads nothing`);
      assert.ok(grown < 8 * MiB, `the server grew by ${(grown / MiB).toFixed(1)} MB while the app did not read`);
      t.diagnostic(
        `${(sentWhileBlocked / MiB).toFixed(1)} MiB of 64 sent while the app read nothing (kernel buffers and one credit window); server RSS grew ${(grown / MiB).toFixed(1)} MB`,
      );
      await sending;
      await until(() => parseResponses(raw).length === 1, 'the answer once the app reads', 30_000);
      assert.equal(parseResponses(raw)[0].body.toString(), String(64 * MiB));
      uploader.destroy();
    });

    it('drains a small unread body and keeps the connection; closes one whose unread body goes on', async (t) => {
      const socket = await connect(port);
      let raw = Buffer.alloc(0);
      socket.on('data', (chunk: Buffer) => (raw = Buffer.concat([raw, chunk])));
      socket.write(`POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: 1000\r\n\r\n${'y'.repeat(1000)}`);
      await until(() => parseResponses(raw).length === 1, 'the first answer');
      socket.write('GET /after HTTP/1.1\r\nHost: x\r\n\r\n');
      await until(() => parseResponses(raw).length === 2, 'an answer on the same connection');
      socket.destroy();

      // A declared body with more than the cap left: closed as soon as the answer is out.
      const declared = await exchange(port, `POST /ignore-body HTTP/1.1\r\nHost: x\r\nContent-Length: ${256 * MiB}\r\n\r\n${'z'.repeat(64 * 1024)}`, {
        timeoutMs: 3000,
      });
      assert.equal(declared.responses[0]?.status, 200);
      assert.ok(declared.closed, 'closed after the answer');

      // A chunked body that goes on and on: closed once the cap is read past the answer.
      const big = await connect(port);
      let got = Buffer.alloc(0);
      let closed = false;
      big.on('data', (chunk: Buffer) => (got = Buffer.concat([got, chunk])));
      big.on('error', () => {});
      big.on('close', () => (closed = true));
      big.write('POST /ignore-body HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n');
      const piece = Buffer.concat([Buffer.from(`${(64 * 1024).toString(16)}\r\n`), Buffer.alloc(64 * 1024, 98), Buffer.from('\r\n')]);
      let sent = 0;
      const started = Date.now();
      while (!closed && Date.now() - started < 15_000) {
        if (big.writableLength < 256 * 1024) {
          big.write(piece);
          sent += piece.length;
        } else await sleep(2);
      }
      assert.ok(closed, 'the server closed the connection');
      assert.equal(parseResponses(got)[0]?.status, 200, 'the answer arrived whole before the close');
      assert.ok(sent < 64 * MiB, `closed after ${(sent / MiB).toFixed(1)} MiB of an endless body`);
      t.diagnostic(`unread chunked body: connection closed after the client sent ${(sent / MiB).toFixed(1)} MiB, ${Date.now() - started} ms`);
    });
  });
}
