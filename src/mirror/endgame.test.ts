// A replication's endgame on the real peer data plane (fastify on loopback) into a real mirror: a late lane's
// end from holders of the whole blob, which answer only once they hold it whole, and every blob still verified.
import { afterEach, describe, expect, it } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import type { Descriptor } from '../oci/digest.js';
import { BLOB_PATH, SEQUENCE_PATH, WHOLE_HEADER } from './peer-protocol.js';
import { PeerClient } from './peer-client.js';
import { blobsIn, cleanUp, holder, key, quitting, spoolsIn, taker, trickling } from '../../test/helpers/data-plane.js';

afterEach(cleanUp);

const inTheEndgame = (helpers: string[]) => ({ ready: Promise.resolve(), helpers });

/**
 * Fetches a blob in two lanes split at `at`, the first from 'whole' and the second from 'slow' in its endgame
 * with `helpers` (`slowFirst`: the other way round); true once stored.
 */
async function inTwoLanes(t: Awaited<ReturnType<typeof taker>>, { digest, size }: Descriptor, at: number, helpers: string[], slowFirst = false): Promise<boolean> {
  const pieces = [{ digest, size, offset: 0, length: at }, { digest, size, offset: at, length: size - at }];
  const feeders = slowFirst ? ['slow', 'whole'] : ['whole', 'slow'];
  const sequences = await Promise.all(pieces.map((p, i) => t.mirror.openSequence(feeders[i], [p])));
  const lanes = pieces.map((p, i) => ({ offset: p.offset, length: p.length, source: sequences[i].next(p), endgame: inTheEndgame(feeders[i] === 'slow' ? helpers : []) }));
  try {
    return await t.mirror.fetch(digest, { from: ['whole'], patient: true, lanes: { size, lanes } }).stored;
  } finally {
    for (const s of sequences) s.close();
  }
}

describe('the endgame', () => {
  it('takes the back half of a late lane from a helper holding the blob whole while the slow feeder goes on from the front', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [4_000_000]);
    const { digest } = blob.desc;
    // Sends its stripe 64 KiB every 40 ms: 3 MB in about 2 s.
    const slow = await trickling('slow', () => blob.bytes.subarray(1_000_000), 65_536, 40);
    const [whole, helper] = await Promise.all(['whole', 'helper'].map((id) => holder(id, origin)));
    const t = await taker([slow.peer, whole.endpoint, helper.endpoint]);
    expect(await inTwoLanes(t, blob.desc, 1_000_000, ['helper'])).toBe(true);
    expect(await t.holds(blob.bytes)).toBe(true);
    // The helper sent the back half, then half of what was left, and so on; the feeder not all of its stripe.
    const ranges = helper.requests.filter((r) => r === `${BLOB_PATH}${digest}`).length;
    expect(ranges).toBeGreaterThanOrEqual(2);
    expect(slow.sent()).toBeLessThan(3_000_000);
    expect(whole.requests).toEqual([SEQUENCE_PATH]);
  });

  it('takes the last bytes of a late lane, too few to halve, from a helper when the feeder would be long about them', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [1_400_000]);
    const { digest } = blob.desc;
    // Sends its 400 KB stripe 10 KB every 100 ms: 4 s for all of it.
    const slow = await trickling('slow', () => blob.bytes.subarray(1_000_000), 10_000, 100);
    const [whole, helper] = await Promise.all(['whole', 'helper'].map((id) => holder(id, origin)));
    const t = await taker([slow.peer, whole.endpoint, helper.endpoint]);
    const started = performance.now();
    expect(await inTwoLanes(t, blob.desc, 1_000_000, ['helper'])).toBe(true);
    expect(performance.now() - started).toBeLessThan(2000);
    expect(await t.holds(blob.bytes)).toBe(true);
    expect(helper.requests).toEqual([`${BLOB_PATH}${digest}`]);
  });

  it('takes all of a late lane from a helper when its feeder has sent none of it yet, in the lanes, without starting over', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [1_400_000]);
    const { digest } = blob.desc;
    // Its 400 KB stripe, the blob's first, 10 KB every 100 ms, and nothing for the first 3 s.
    const slow = await trickling('slow', () => blob.bytes.subarray(0, 400_000), 10_000, 100, { firstAfterMs: 3000 });
    const [whole, helper] = await Promise.all(['whole', 'helper'].map((id) => holder(id, origin)));
    const t = await taker([slow.peer, whole.endpoint, helper.endpoint]);
    const started = performance.now();
    expect(await inTwoLanes(t, blob.desc, 400_000, ['helper'], true)).toBe(true);
    // Not waiting for the feeder's first bytes, which the lane no longer needs, nor for its stall timeout (2 s).
    expect(performance.now() - started).toBeLessThan(1000);
    expect(await t.holds(blob.bytes)).toBe(true);
    expect(helper.requests).toEqual([`${BLOB_PATH}${digest}`]);
    // Had the lanes failed, the blob would have been asked of 'whole' again, all of it.
    expect(whole.requests).toEqual([SEQUENCE_PATH]);
    expect(slow.sent()).toBe(0);
  });

  it('asks a helper that holds the blob only in part for its end: it answers once the blob is whole there, or 404 after waiting', async () => {
    const [blob] = await blobsIn(new MemoryStore(), [600_000]);
    const { digest, size } = blob.desc;
    const spools = await spoolsIn();
    const helper = await holder('helper', new MemoryStore(), spools, { awaitWholeMs: 1000 });
    const peers = new PeerClient(key);
    const ask = () => peers.request(helper.endpoint, `${BLOB_PATH}${digest}`, { from: 300_000, to: size - 1, headers: { [WHOLE_HEADER]: '1' }, signal: AbortSignal.timeout(5000) });
    // Nothing held: not found once the wait is over.
    const none = await ask();
    none.body.destroy();
    expect(none.status).toBe(404);
    // Arriving: the answer waits for the verification, though the range asked is there before.
    const spool = await spools.create(digest);
    spool.setSize(size);
    await spool.append(blob.bytes.subarray(0, size - 1));
    await spool.flush();
    let verifiedAt = Infinity;
    setTimeout(() => {
      void spool.append(blob.bytes.subarray(size - 1)).then(() => spool.flush()).then(() => {
        spool.verify();
        verifiedAt = performance.now();
      });
    }, 300);
    const res = await ask();
    expect(res.status).toBe(206);
    expect(performance.now()).toBeGreaterThanOrEqual(verifiedAt);
    expect(Buffer.concat(await res.body.toArray()).equals(blob.bytes.subarray(300_000))).toBe(true);
    await spools.remove(spool);
  });

  it('takes every share of a dead root\'s stripe from the node pushed to once the taker holds every other stripe', async () => {
    const origin = new MemoryStore();
    const [blob] = await blobsIn(origin, [3_000_000]);
    const { digest, size } = blob.desc;
    const quitter = await quitting(blob.bytes.subarray(1_000_000, 1_300_000));
    const [whole, fellow] = await Promise.all(['whole', 'fellow'].map((id) => holder(id, origin)));
    const t = await taker([quitter, whole.endpoint, fellow.endpoint]);
    const pieces = [{ digest, size, offset: 0, length: 1_000_000 }, { digest, size, offset: 1_000_000, length: 2_000_000 }];
    const sequences = await Promise.all([t.mirror.openSequence('whole', [pieces[0]]), t.mirror.openSequence('quitter', [pieces[1]])]);
    const standIns = { ask: [], atOnce: 1, byChunk: ['whole', 'fellow'], whole: 'whole' };
    const lanes = pieces.map((p, i) => ({ offset: p.offset, length: p.length, source: sequences[i].next(p), standIns: i === 1 ? standIns : undefined, endgame: inTheEndgame([]) }));
    expect(await t.mirror.fetch(digest, { from: ['whole'], patient: true, lanes: { size, lanes } }).stored).toBe(true);
    expect(await t.holds(blob.bytes)).toBe(true);
    // 1,700,000 bytes left, chunks 1–7 of 256 KiB from the stripe's start: all from the node pushed to, none from the fellow orphan.
    expect(whole.requests.filter((r) => r === `${BLOB_PATH}${digest}`)).toHaveLength(7);
    expect(fellow.requests).toEqual([]);
  });

  it('moves a slow feeder on to its next piece at once when others brought the rest of this one, on a new stream', async () => {
    const [big, small] = await blobsIn(new MemoryStore(), [3_000_000, 200_000]);
    const bytesOf = new Map([big, small].map((b) => [b.desc.digest, b.bytes]));
    // Sends each sequence asked for 64 KiB every 40 ms: all of `big` would take about 2 s.
    const asked: string[][] = [];
    const slow = await trickling('slow', (body) => {
      const { blobs } = JSON.parse(body.toString()) as { blobs: { digest: string }[] };
      asked.push(blobs.map((b) => b.digest));
      return Buffer.concat(blobs.map((b) => bytesOf.get(b.digest)!));
    }, 65_536, 40);
    const t = await taker([slow.peer]);
    const pieces = [big, small].map(({ desc: { digest, size } }) => ({ digest, size, offset: 0, length: size }));
    const sequence = await t.mirror.openSequence('slow', pieces);
    const first = (await sequence.next(pieces[0]))!;
    for await (const _ of first.bytes) break; // one chunk, then the rest of `big` comes from elsewhere
    const started = performance.now();
    const got: Uint8Array[] = [];
    for await (const chunk of (await sequence.next(pieces[1]))!.bytes) got.push(chunk);
    expect(Buffer.concat(got).equals(small.bytes)).toBe(true);
    expect(performance.now() - started).toBeLessThan(1000);
    expect(asked).toEqual([[big.desc.digest, small.desc.digest], [small.desc.digest]]);
    expect(slow.sent()).toBeLessThan(1_000_000);
    sequence.close();
  });
});
