/**
 * The relay's frame batches (shared/wire.ts): FrameBatcher's hand-written msgpack writer against msgpackr's
 * own `pack()` of the same frames, each followed by the decode the other thread does (decodeBatch). No
 * sockets, one thread: the cost per frame of encoding, copying into a transferable buffer and decoding.
 *
 *   npm run bench:wire
 *
 * Batches of 1, 4 and 16 hello-world responses (a Data frame of 130 bytes each), as the relay writes them.
 */
import { Packr } from 'msgpackr/pack';
import { Unpackr } from 'msgpackr/unpack';
import type { MessagePort } from 'node:worker_threads';
import { Frame, FrameBatcher, decodeBatch } from '../shared/wire.js';

const RESPONSE = Buffer.from(
  `HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 13\r\nDate: ${new Date().toUTCString()}\r\nKeep-Alive: timeout=75\r\n\r\nHello, World!`,
);
const ROUNDS = 5;
const FRAMES_PER_ROUND = 400_000;
const packr = new Packr({ useRecords: false, moreTypes: false });
const unpackr = new Unpackr({ useRecords: false });
let sink = 0;

/** The hand-written path: push, flush (one transferable buffer), decode. */
function batcher(perBatch: number): number {
  let posted: ArrayBuffer | undefined;
  const port = { postMessage: (buffer: ArrayBuffer) => (posted = buffer) } as unknown as MessagePort;
  const writer = new FrameBatcher(port);
  const started = process.hrtime.bigint();
  for (let done = 0; done < FRAMES_PER_ROUND; done += perBatch) {
    for (let i = 0; i < perBatch; i++) writer.push(Frame.Data, i + 1, RESPONSE);
    writer.flush();
    decodeBatch(posted!, (type, id) => (sink += type + id));
  }
  return Number(process.hrtime.bigint() - started) / FRAMES_PER_ROUND;
}

/** msgpackr's path: pack the same [type, id, payload, ...] array, copy it out of msgpackr's arena into its own ArrayBuffer, decode. */
function generic(perBatch: number): number {
  const started = process.hrtime.bigint();
  for (let done = 0; done < FRAMES_PER_ROUND; done += perBatch) {
    const frames: unknown[] = [];
    for (let i = 0; i < perBatch; i++) frames.push(Frame.Data, i + 1, RESPONSE);
    const packed = packr.pack(frames);
    const transferable = packed.buffer.slice(packed.byteOffset, packed.byteOffset + packed.byteLength);
    const decoded = unpackr.unpack(Buffer.from(transferable)) as unknown[];
    for (let i = 0; i < decoded.length; i += 3) sink += (decoded[i] as number) + (decoded[i + 1] as number);
  }
  return Number(process.hrtime.bigint() - started) / FRAMES_PER_ROUND;
}

const median = (values: number[]) => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)];
const lines = [
  `Node ${process.versions.node}; ${ROUNDS} rounds of ${FRAMES_PER_ROUND.toLocaleString('en')} frames, interleaved; the median round. ${new Date().toISOString().slice(0, 10)}.`,
  '',
  '| frames per batch | FrameBatcher + decode, ns/frame | msgpackr pack + copy + decode, ns/frame | saved per frame |',
  '|---:|---:|---:|---:|',
];
for (const perBatch of [1, 4, 16]) {
  batcher(perBatch);
  generic(perBatch); // warm up both
  const ours: number[] = [];
  const theirs: number[] = [];
  for (let round = 0; round < ROUNDS; round++) {
    ours.push(batcher(perBatch));
    theirs.push(generic(perBatch));
  }
  const [a, b] = [median(ours), median(theirs)];
  lines.push(`| ${perBatch} | ${a.toFixed(0)} | ${b.toFixed(0)} | ${(b - a).toFixed(0)} ns (${(b / a).toFixed(2)}×) |`);
}
process.stdout.write(`${lines.join('\n')}\n`);
if (sink === -1) process.stdout.write('\n'); // keep the work observable
