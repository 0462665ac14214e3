/**
 * Without a server: the relay's frames and their batches (shared/wire.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MessageChannel } from 'node:worker_threads';
import { Unpackr } from 'msgpackr';
import { Frame, FrameBatcher, MAX_BATCH_BYTES, decodeBatch } from '../../shared/wire.js';

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
