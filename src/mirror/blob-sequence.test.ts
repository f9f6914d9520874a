// Sequences of blobs from the real peer data plane (fastify on loopback) into a real mirror: one stream
// for many blobs, partial copies streamed as they arrive, and every blob still verified and stored.
import { randomBytes } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { BLOB_PATH, PATIENT_HEADER, SEQUENCE_PATH } from './peer-protocol.js';
import { PeerClient } from './peer-client.js';
import { BlobSequence } from './blob-sequence.js';
import type { DataPlane } from '../dht/membership.js';
import { digestOf } from '../oci/digest.js';
import { blobsIn, cleanUp, holder, key, onCleanUp, quitting, rawPeer, spoolsIn, taker } from '../../test/helpers/data-plane.js';

afterEach(cleanUp);

describe('blob sequences', () => {
  it('sends many blobs on one request, each verified and stored', async () => {
    const origin = new MemoryStore();
    const blobs = await blobsIn(origin, [300_000, 1, 2 << 20, 70_000]);
    const { endpoint, requests } = await holder('origin', origin);
    const t = await taker([endpoint]);
    await t.fetchInOrder('origin', blobs.map((b) => b.desc));
    for (const b of blobs) expect(await t.holds(b.bytes)).toBe(true);
    expect(requests).toEqual([SEQUENCE_PATH]);
  });

  it('streams a blob the holder is still receiving, and waits for one whose copy has not begun', async () => {
    const [early, late] = await blobsIn(new MemoryStore(), [500_000, 400_000]);
    const spools = await spoolsIn();
    const { endpoint } = await holder('relay', new MemoryStore(), spools);
    const t = await taker([endpoint]);
    const relayed = (async () => {
      for (const { desc, bytes } of [early, late]) {
        await new Promise((r) => setTimeout(r, 100)); // the relay's own copy begins after the request
        const spool = await spools.create(desc.digest);
        spool.setSize(desc.size);
        for (let at = 0; at < bytes.length; at += 100_000) {
          await spool.append(bytes.subarray(at, at + 100_000));
          await spool.flush();
          await new Promise((r) => setTimeout(r, 20));
        }
        spool.verify();
        await new Promise((r) => setTimeout(r, 50)); // readers finish before the spool goes
        await spools.remove(spool);
      }
    })();
    await t.fetchInOrder('relay', [early.desc, late.desc]);
    await relayed;
    expect(await t.holds(early.bytes)).toBe(true);
    expect(await t.holds(late.bytes)).toBe(true);
  });

  it('takes what the holder does not have from other holders, from where the sequence ended', async () => {
    const full = new MemoryStore();
    const blobs = await blobsIn(full, [300_000, 400_000, 300_000]);
    const partial = new MemoryStore();
    await putBlob(partial, blobs[0].bytes, blobs[0].desc.digest);
    const short = await holder('short', partial);
    const whole = await holder('whole', full);
    const t = await taker([short.endpoint, whole.endpoint]);
    await t.fetchInOrder('short', blobs.map((b) => b.desc), ['short', 'whole']);
    for (const b of blobs) expect(await t.holds(b.bytes)).toBe(true);
    expect(short.requests.filter((r) => r === SEQUENCE_PATH)).toHaveLength(1);
  });

  it('never keeps a blob the sequence sent wrong: it comes from another holder, and the sequence goes on', async () => {
    const full = new MemoryStore();
    const blobs = await blobsIn(full, [300_000, 300_000]);
    // A member sending garbage for the first blob and the right bytes for the second.
    const liarEndpoint = await rawPeer('liar', (req, res) => {
      res.writeHead(req.url === SEQUENCE_PATH ? 200 : 404);
      res.end(req.url === SEQUENCE_PATH ? Buffer.concat([randomBytes(300_000), blobs[1].bytes]) : undefined);
    });
    const whole = await holder('whole', full);
    const t = await taker([liarEndpoint, whole.endpoint]);
    await t.fetchInOrder('liar', blobs.map((b) => b.desc), ['liar', 'whole']);
    for (const b of blobs) expect(await t.holds(b.bytes)).toBe(true);
    expect(whole.requests).toEqual([`/peer/v1/blobs/${blobs[0].desc.digest}`]);
  });

  /** Reads the start of the first piece, leaves with a read under way (its lane filled by others: the endgame), then reads the second. */
  async function secondAfterLeaving(feeder: DataPlane, first: Buffer, second: Buffer): Promise<Buffer | undefined> {
    const pieces = [first, second].map((b) => ({ digest: digestOf(b), size: b.length, offset: 0, length: b.length }));
    const sequence = await BlobSequence.open(feeder, pieces, { peers: new PeerClient(key), stallTimeoutMs: 5_000 });
    try {
      const reader = (await sequence.next(pieces[0]))!.bytes[Symbol.asyncIterator]();
      await reader.next();
      const waiting = reader.next().catch(() => undefined);
      void reader.return?.(undefined);
      const next = await sequence.next(pieces[1]);
      const got: Uint8Array[] = [];
      for await (const chunk of next?.bytes ?? []) got.push(chunk);
      await waiting;
      return next && Buffer.concat(got);
    } finally {
      sequence.close();
    }
  }

  it('gives the next piece its own bytes when the reader of the piece before left with a read under way', async () => {
    const [first, second] = [randomBytes((64 << 10) + 10_000), randomBytes(300_000)];
    // A slow feeder: the start of the first piece, a pause, then the rest and the second piece.
    const feeder = await rawPeer('feeder', (_req, res) => {
      res.writeHead(200);
      res.write(first.subarray(0, 64 << 10));
      setTimeout(() => res.end(Buffer.concat([first.subarray(64 << 10), second])), 300);
    });
    expect((await secondAfterLeaving(feeder, first, second))?.equals(second)).toBe(true);
  });

  it('asks again for the next piece when much of the piece before is left, though its reader left with a read under way', async () => {
    const [first, second] = [randomBytes(1 << 20), randomBytes(300_000)];
    let asked = 0;
    const feeder = await rawPeer('feeder', (req, res) => {
      req.resume().on('end', () => {
        res.writeHead(200);
        // First the start of the first piece and nothing more for a while; asked again, the second piece.
        if (asked++ === 0) res.write(first.subarray(0, 64 << 10));
        else res.end(second);
      });
    });
    expect((await secondAfterLeaving(feeder, first, second))?.equals(second), 'the sequence goes on').toBe(true);
    expect(asked).toBe(2);
  });

  it('refuses a request that does not list digests and sizes, or names a level that is none', async () => {
    const { endpoint } = await holder('origin', new MemoryStore());
    const t = await taker([endpoint]);
    await expect(t.mirror.openSequence('origin', [{ digest: 'sha256:nothex', size: 1, offset: 0, length: 1 }])).rejects.toThrow(/answered 400/);
    const [blob] = await blobsIn(new MemoryStore(), [10]);
    await expect(t.mirror.openSequence('origin', [{ digest: blob.desc.digest, size: 10, offset: 5, length: 6 }])).rejects.toThrow(/answered 400/);
    // A level without a push's digest, with a lane beyond its lanes, or more lanes than any plan cuts.
    const whole = { digest: blob.desc.digest, size: 10, offset: 0, length: 10 };
    const key = blob.desc.digest;
    for (const level of [{ key: 'app:1', lane: 0, lanes: 2 }, { key, lane: 2, lanes: 2 }, { key, lane: -1, lanes: 2 }, { key, lane: 0.5, lanes: 2 }, { key, lane: 0, lanes: 65 }]) {
      await expect(t.mirror.openSequence('origin', [whole], level)).rejects.toThrow(/answered 400/);
    }
    // A well-formed one is taken: the holder, which lacks the blob, says so.
    await expect(t.mirror.openSequence('origin', [whole], { key, lane: 1, lanes: 2 })).rejects.toThrow(/answered 404/);
  });

  it('takes a blob in stripes from two feeders at once, each sending its range of it', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [3_000_000]);
    const a = await holder('a', origin);
    const b = await holder('b', origin);
    const t = await taker([a.endpoint, b.endpoint]);
    const { digest, size } = blob.desc;
    const halves = [{ digest, size, offset: 0, length: 1_000_000 }, { digest, size, offset: 1_000_000, length: 2_000_000 }];
    const sequences = await Promise.all([t.mirror.openSequence('a', [halves[0]]), t.mirror.openSequence('b', [halves[1]])]);
    const lanes = halves.map((p, i) => ({ offset: p.offset, length: p.length, source: sequences[i].next(p) }));
    const fetching = t.mirror.fetch(digest, { from: ['a'], patient: true, lanes: { size, lanes } });
    expect(await fetching.stored).toBe(true);
    expect(await t.holds(blob.bytes)).toBe(true);
    expect([a.requests, b.requests]).toEqual([[SEQUENCE_PATH], [SEQUENCE_PATH]]);
  });

  it('finishes the stripe of a feeder that breaks off from another holder, as a range from where it stopped', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [2_000_000]);
    const { digest, size } = blob.desc;
    const quitter = await quitting(blob.bytes.subarray(1_000_000, 1_300_000));
    const whole = await holder('whole', origin);
    const t = await taker([quitter, whole.endpoint]);
    const halves = [{ digest, size, offset: 0, length: 1_000_000 }, { digest, size, offset: 1_000_000, length: 1_000_000 }];
    const sequences = await Promise.all([t.mirror.openSequence('whole', [halves[0]]), t.mirror.openSequence('quitter', [halves[1]])]);
    const lanes = halves.map((p, i) => ({ offset: p.offset, length: p.length, source: sequences[i].next(p) }));
    expect(await t.mirror.fetch(digest, { from: ['whole'], patient: true, lanes: { size, lanes } }).stored).toBe(true);
    expect(await t.holds(blob.bytes)).toBe(true);
    expect(whole.requests).toEqual([SEQUENCE_PATH, `/peer/v1/blobs/${digest}`]);
  });

  it('finishes the stripe of a feeder that breaks off from its stand-in, which serves it even while sending that blob to others', async () => {
    const origin = new MemoryStore();
    // Large: an answer nobody reads stays under way only once the sockets' buffers are full.
    const [blob] = await blobsIn(origin, [16_000_000]);
    const { digest, size } = blob.desc;
    const quitter = await quitting(blob.bytes.subarray(8_000_000, 8_300_000));
    const whole = await holder('whole', origin);
    const standIn = await holder('stand-in', origin);
    // Another peer takes the blob from the stand-in meanwhile (its answer stays open until read): it is busy with it.
    const other = new PeerClient(key);
    const ask = () => other.request(standIn.endpoint, `${BLOB_PATH}${digest}`, { headers: { [PATIENT_HEADER]: 'other' }, signal: AbortSignal.timeout(10_000) });
    const sending = await ask();
    onCleanUp(async () => void sending.body.destroy());
    const asBusy = await ask();
    asBusy.body.destroy();
    expect(asBusy.status).toBe(503);

    const t = await taker([quitter, whole.endpoint, standIn.endpoint]);
    const halves = [{ digest, size, offset: 0, length: 8_000_000 }, { digest, size, offset: 8_000_000, length: 8_000_000 }];
    const sequences = await Promise.all([t.mirror.openSequence('whole', [halves[0]]), t.mirror.openSequence('quitter', [halves[1]])]);
    const lanes = halves.map((p, i) => ({ offset: p.offset, length: p.length, source: sequences[i].next(p), standIns: { ask: i === 1 ? ['stand-in'] : [], atOnce: 1 } }));
    expect(await t.mirror.fetch(digest, { from: ['whole'], patient: true, lanes: { size, lanes } }).stored).toBe(true);
    expect(await t.holds(blob.bytes)).toBe(true);
    // The node pushed to (here 'whole') is not asked: the stand-in is, and sends the range though busy.
    expect(whole.requests).toEqual([SEQUENCE_PATH]);
    expect(standIn.requests).toEqual([`${BLOB_PATH}${digest}`, `${BLOB_PATH}${digest}`, `${BLOB_PATH}${digest}`]);
  });

  it('takes the rest of a stripe from two stand-ins at once when the plan says so, chunk after chunk', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [2_000_000]);
    const { digest, size } = blob.desc;
    const quitter = await quitting(blob.bytes.subarray(1_000_000, 1_300_000));
    const [whole, a, b] = await Promise.all(['whole', 'a', 'b'].map((id) => holder(id, origin)));
    const t = await taker([quitter, whole.endpoint, a.endpoint, b.endpoint]);
    const halves = [{ digest, size, offset: 0, length: 1_000_000 }, { digest, size, offset: 1_000_000, length: 1_000_000 }];
    const sequences = await Promise.all([t.mirror.openSequence('whole', [halves[0]]), t.mirror.openSequence('quitter', [halves[1]])]);
    const lanes = halves.map((p, i) => ({ offset: p.offset, length: p.length, source: sequences[i].next(p), standIns: { ask: i === 1 ? ['a', 'b'] : [], atOnce: 2 } }));
    expect(await t.mirror.fetch(digest, { from: ['whole'], patient: true, lanes: { size, lanes } }).stored).toBe(true);
    expect(await t.holds(blob.bytes)).toBe(true);
    // 700,000 bytes left, in chunks of 256 KiB: three requests, shared by the two.
    expect(whole.requests).toEqual([SEQUENCE_PATH]);
    expect([...a.requests, ...b.requests]).toEqual(Array(3).fill(`${BLOB_PATH}${digest}`));
    expect(a.requests.length * b.requests.length).toBeGreaterThan(0);
  });

  it('takes the rest of a stripe in shares with the other orphan of a dead root, each sending the other the chunks it took', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [3_000_000]);
    const { digest, size } = blob.desc;
    const peers = [await quitting(blob.bytes.subarray(1_000_000, 1_300_000))];
    const whole = await holder('whole', origin);
    const [a, b] = await Promise.all(['a', 'b'].map(async (id) => {
      const spools = await spoolsIn();
      // A share waits on the other orphan's own copy: a stall timeout that a loaded machine can outlast would send it to `whole`.
      const t = await taker(peers, id, spools, { stallTimeoutMs: 10_000 });
      return { ...t, ...(await holder(id, t.store, spools)) };
    }));
    peers.push(whole.endpoint, a.endpoint, b.endpoint);
    const halves = [{ digest, size, offset: 0, length: 1_000_000 }, { digest, size, offset: 1_000_000, length: 2_000_000 }];
    const fetch = async (t: typeof a, byChunk: string[]) => {
      const sequences = await Promise.all([t.mirror.openSequence('whole', [halves[0]]), t.mirror.openSequence('quitter', [halves[1]])]);
      const lanes = halves.map((p, i) => ({ offset: p.offset, length: p.length, source: sequences[i].next(p), standIns: i === 1 ? { ask: [], atOnce: 1, byChunk } : undefined }));
      return t.mirror.fetch(digest, { from: ['whole'], patient: true, lanes: { size, lanes } }).stored;
    };
    // a takes the even chunks from the node pushed to, b the odd ones; each the others from the other.
    expect(await Promise.all([fetch(a, ['whole', 'b']), fetch(b, ['a', 'whole'])])).toEqual([true, true]);
    expect([await a.holds(blob.bytes), await b.holds(blob.bytes)]).toEqual([true, true]);
    // 1,700,000 bytes left, chunks 1–7 of 256 KiB from the stripe's start: each sent once by the node pushed to.
    const ranges = (r: string[]) => r.filter((url) => url === `${BLOB_PATH}${digest}`).length;
    expect([ranges(whole.requests), ranges(b.requests), ranges(a.requests)]).toEqual([7, 4, 3]);
  });

  it('takes the rest from the next two stand-ins at once when the first does not answer, without waiting out the stall timeout', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [2_000_000]);
    const { digest, size } = blob.desc;
    const quitter = await quitting(blob.bytes.subarray(1_000_000, 1_300_000));
    const silent = await rawPeer('silent', () => undefined);
    const [whole, a, b] = await Promise.all(['whole', 'a', 'b'].map((id) => holder(id, origin)));
    const t = await taker([quitter, silent, whole.endpoint, a.endpoint, b.endpoint]);
    const halves = [{ digest, size, offset: 0, length: 1_000_000 }, { digest, size, offset: 1_000_000, length: 1_000_000 }];
    const sequences = await Promise.all([t.mirror.openSequence('whole', [halves[0]]), t.mirror.openSequence('quitter', [halves[1]])]);
    const lanes = halves.map((p, i) => ({ offset: p.offset, length: p.length, source: sequences[i].next(p), standIns: { ask: i === 1 ? ['silent', 'a', 'b'] : [], atOnce: 1 } }));
    const started = performance.now();
    expect(await t.mirror.fetch(digest, { from: ['whole'], patient: true, lanes: { size, lanes } }).stored).toBe(true);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await t.holds(blob.bytes)).toBe(true);
    expect(whole.requests).toEqual([SEQUENCE_PATH]);
    expect(a.requests.length * b.requests.length).toBeGreaterThan(0);
  });
});
