import { Readable } from 'node:stream';
import { pino } from 'pino';
import { register } from 'prom-client';
import { describe, expect, test } from 'vitest';
import { MemoryStore } from '../store/memory-store.js';
import { putBlob } from '../store/store.js';
import { digestOf } from '../oci/digest.js';
import { MediaType } from '../oci/manifest.js';
import { pushEvent } from './push-event.js';
import { NewestPushes } from './newest-pushes.js';
import { TagRecords } from './tag-records.js';
import type { Lane, StandIns } from '../mirror/lanes.js';
import { Replicator } from './replicator.js';
import { PushFollower } from './push-follower.js';
import { parseReplicationPolicy } from '../oci/replication-policy.js';
import { pushOf } from '../oci/tag-push.js';
import { planFor, takerOrder } from './replication-plan.js';
import type { Piece, SequenceLevel } from '../mirror/peer-protocol.js';

const ORIGIN = 'origin-peer';
const SELF = 'self-peer';
/** The stamp of the pushes copied here: nothing newer is known to the taker. */
const push = { clock: 1, node: ORIGIN };

/** An image in `origin`'s store: a config and one layer of each given size. */
async function pushedImage(origin: MemoryStore, layerSizes: number[]) {
  const blobs = new Map<string, Buffer>();
  const add = async (bytes: Buffer) => {
    const digest = digestOf(bytes);
    blobs.set(digest, bytes);
    await putBlob(origin, bytes, digest);
    return { digest, size: bytes.length };
  };
  const config = await add(Buffer.from('{"architecture":"amd64"}'));
  const layers = [];
  for (const [i, size] of layerSizes.entries()) layers.push(await add(Buffer.alloc(size, i + 1)));
  const manifest = await add(Buffer.from(JSON.stringify({
    schemaVersion: 2,
    mediaType: MediaType.ociManifest,
    config: { mediaType: 'application/vnd.oci.image.config.v1+json', ...config },
    layers: layers.map((l) => ({ mediaType: 'application/vnd.oci.image.layer.v1.tar', ...l })),
  })));
  return { manifest, config, layers, blobs };
}

/**
 * A replicator on a fresh store whose "mesh" copies blobs from `blobs`, recording what it transferred
 * and, when the node before sends sequences (`sequences`), what it asked for on them. `stuck`: those
 * sequences never get to a piece (a feeder far behind), and the blobs come by other means.
 */
function taker(blobs: Map<string, Buffer>, { sequences = false, stuck = false, store = new MemoryStore(), fetchMs = 0 } = {}) {
  const pushes = new NewestPushes(SELF);
  const fetched: string[] = [];
  const asked: { peer: string; digests: string[]; level?: SequenceLevel }[] = [];
  const fromSequence: string[] = [];
  const closed: string[] = [];
  const askedFirst = new Map<string, string>();
  /** Per blob, each lane's stand-ins: whom the mirror asks when its feeder stops, and how many at once. */
  const standIns = new Map<string, (StandIns | undefined)[]>();
  const lanesOf = new Map<string, Lane[]>();
  const replicator = new Replicator({
    store,
    records: new TagRecords(store, pushes, pino({ level: 'silent' })),
    membership: { self: SELF },
    mirror: {
      fetch: (digest, { lanes, from }) => {
        askedFirst.set(digest, from?.[0] ?? '');
        standIns.set(digest, lanes?.lanes.map((l) => l.standIns) ?? []);
        lanesOf.set(digest, lanes?.lanes ?? []);
        const stored = (async () => {
          // As the mirror: a lane whose feeder sends nothing is taken from holders, `from` first.
          for (const lane of stuck ? [] : lanes?.lanes ?? []) if (await lane.source) fromSequence.push(digest);
          if (await store.stat(digest)) return true; // as the mirror: nothing crosses the network for it
          fetched.push(digest);
          if (fetchMs) await new Promise((r) => setTimeout(r, fetchMs));
          const bytes = blobs.get(digest);
          if (bytes) await putBlob(store, bytes, digest);
          return bytes !== undefined;
        })();
        return { verified: stored, stored };
      },
      openSequence: async (peer, pieces, level) => {
        if (!sequences) throw new Error('no sequences here');
        asked.push({ peer, digests: pieces.map((p) => p.digest), level });
        const next = stuck ? () => new Promise<undefined>(() => undefined) : async (p: Piece) => ({ peer, size: p.size, offset: p.offset, length: p.length, bytes: Readable.from([]) });
        return { next, close: () => void closed.push(peer) };
      },
      arriving: () => new Map(),
    },
    log: pino({ level: 'silent' }),
  });
  return { store, fetched, replicator, asked, fromSequence, askedFirst, standIns, lanesOf, pushes, closed };
}

describe('replicator', () => {
  test('the same image pushed again while it is copied is named with the newer push; a copy of both that fails is tried again', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [300 << 10]);
    const manifest = img.manifest.digest;
    const missing = img.blobs.get(manifest)!;
    img.blobs.delete(manifest); // the first try finds no holder of the manifest
    const { store, replicator, pushes, fetched } = taker(img.blobs, { fetchMs: 50 });
    const follower = new PushFollower({
      store, pushes, replicator, policy: parseReplicationPolicy('all'), self: { name: SELF, labels: {} },
      membership: { self: SELF, peers: () => [] }, log: pino({ level: 'silent' }), retryAfterMs: [100],
    });
    const name = 'docker.io/library/again:1';
    const pushed = (clock: number) => ({ type: 'image-pushed' as const, image: name, digest: img.manifest.digest, node: ORIGIN, clock });
    try {
      follower.onEvent(pushed(100));
      await new Promise((r) => setTimeout(r, 10));
      follower.onEvent(pushed(200));
      await new Promise((r) => setTimeout(r, 60));
      img.blobs.set(manifest, missing);
      for (let i = 0; i < 100 && !(await store.images.get(name)); i++) await new Promise((r) => setTimeout(r, 10));
      const record = await store.images.get(name);
      expect(record?.target.digest).toBe(img.manifest.digest);
      expect(pushOf(record!.labels)).toEqual({ clock: 200, node: ORIGIN });
      expect(fetched.filter((d) => d === manifest), 'one copy at a time, tried again once').toHaveLength(2);
    } finally {
      follower.stop();
    }
  });

  test('a push of the same image joining while its record is written is the stamp the record ends with', async () => {
    const store = new MemoryStore();
    const digest = `sha256:${'d'.repeat(64)}`;
    await store.images.put({ name: 'docker.io/library/same:1', target: { mediaType: MediaType.ociManifest, digest, size: 10 }, labels: {} });
    const writes: unknown[] = [];
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    const replicator = new Replicator({
      store, membership: { self: SELF }, log: pino({ level: 'silent' }),
      records: { write: async (_image: string, _target: unknown, stamp: unknown) => (writes.push(stamp), writes.length === 1 && (await gate), true) } as unknown as TagRecords,
      mirror: { fetch: () => { throw new Error('nothing is fetched'); }, openSequence: async () => { throw new Error('no sequence'); }, arriving: () => new Map() },
    });
    const first = replicator.replicate('docker.io/library/same:1', digest, ORIGIN, { push: { clock: 1, node: ORIGIN } });
    await expect.poll(() => writes.length).toBe(1);
    const second = replicator.replicate('docker.io/library/same:1', digest, ORIGIN, { push: { clock: 2, node: ORIGIN } });
    const older = replicator.replicate('docker.io/library/same:1', digest, ORIGIN, { push: { clock: 0, node: ORIGIN } });
    release();
    await Promise.all([first, second, older]);
    expect(writes).toEqual([{ clock: 1, node: ORIGIN }, { clock: 2, node: ORIGIN }]);
  });

  test('an image removed from the mesh while it is copied here is not named when its copy ends', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [300 << 10]);
    const { store, replicator } = taker(img.blobs, { fetchMs: 50 });
    const copy = replicator.replicate('docker.io/library/gone:1', img.manifest.digest, ORIGIN, { push, order: [SELF] });
    await new Promise((r) => setTimeout(r, 20));
    replicator.cancel('docker.io/library/gone:1');
    expect(replicator.copying('docker.io/library/gone:1')).toBeUndefined();
    await copy;
    expect(await store.images.get('docker.io/library/gone:1')).toBeUndefined();
  });

  test('takes the small blobs from the push gossip and fetches only the layers', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [300 << 10, 1000]);
    const event = await pushEvent(origin, { image: 'docker.io/library/app:1', digest: img.manifest.digest, node: ORIGIN, clock: 1 }, [], pino({ level: 'silent' }));
    const { store, fetched, replicator } = taker(img.blobs);
    await replicator.replicate(event.image, event.digest, ORIGIN, { push, order: [SELF], inline: event.inline });
    expect(fetched).toEqual([img.layers[0].digest]);
    for (const digest of img.blobs.keys()) expect((await store.stat(digest))?.digest).toBe(digest);
    expect((await store.images.get('docker.io/library/app:1'))?.target.digest).toBe(img.manifest.digest);
  });

  test('an inlined blob that does not match its digest is fetched instead, never stored', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [1000]);
    const forged = Buffer.from('{"architecture":"evil"}').toString('base64');
    const inline = { [img.manifest.digest]: img.blobs.get(img.manifest.digest)!.toString('base64'), [img.config.digest]: forged };
    const { store, fetched, replicator } = taker(img.blobs);
    await replicator.replicate('docker.io/library/app:2', img.manifest.digest, ORIGIN, { push, order: [SELF], inline });
    expect(fetched.sort()).toEqual([img.config.digest, img.layers[0].digest].sort());
    const { stream } = await store.open(img.config.digest);
    expect(digestOf(Buffer.concat(await stream.toArray()))).toBe(img.config.digest);
  });

  test('an index: its platforms\' manifests count as in transfer while the copy runs, a layer they share once in the bytes replicated', async () => {
    const origin = new MemoryStore();
    const [amd, arm] = [await pushedImage(origin, [2000]), await pushedImage(origin, [2000, 500])]; // the config and a layer shared
    const index = Buffer.from(JSON.stringify({
      schemaVersion: 2, mediaType: MediaType.ociIndex,
      manifests: [amd, arm].map((p) => ({ mediaType: MediaType.ociManifest, ...p.manifest })),
    }));
    await putBlob(origin, index, digestOf(index));
    const blobs = new Map([...amd.blobs, ...arm.blobs, [digestOf(index), index]]);
    const { replicator } = taker(blobs, { fetchMs: 100 });
    const replicated = async () => (await register.getSingleMetric('layermesh_replicated_bytes_total')!.get()).values[0]?.value ?? 0;
    const before = await replicated();
    const copy = replicator.replicate('docker.io/library/multi:1', digestOf(index), ORIGIN, { push });
    await expect.poll(() => replicator.inFlight().has(amd.layers[0].digest), { timeout: 5_000 }).toBe(true);
    for (const p of [amd, arm]) expect(replicator.inFlight().has(p.manifest.digest)).toBe(true);
    await copy;
    expect(await replicated()).toBe(before + amd.config.size + amd.layers[0].size + arm.layers[1].size);
  });

  test('without inlined blobs, the manifest comes from the mesh first', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [1000]);
    const { store, fetched, replicator } = taker(img.blobs);
    await replicator.replicate('docker.io/library/app:3', img.manifest.digest, ORIGIN, { push });
    expect(fetched[0]).toBe(img.manifest.digest);
    expect((await store.images.get('docker.io/library/app:3'))?.target.digest).toBe(img.manifest.digest);
  });

  test('alone, takes every layer from the node pushed to on one sequence, in the manifest\'s order', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [300 << 10, 1000, 500 << 10, 400 << 10]);
    const event = await pushEvent(origin, { image: 'docker.io/library/app:4', digest: img.manifest.digest, node: ORIGIN, clock: 1 }, [], pino({ level: 'silent' }));
    const { store, fetched, replicator, asked, fromSequence } = taker(img.blobs, { sequences: true });
    await replicator.replicate(event.image, event.digest, ORIGIN, { push, order: [SELF], inline: event.inline });
    const large = [img.layers[0], img.layers[2], img.layers[3]].map((l) => l.digest);
    expect(asked).toEqual([{ peer: ORIGIN, digests: large }]);
    expect(fromSequence).toEqual(large);
    expect(fetched).toEqual(large); // the small layer came inlined in the gossip
    expect((await store.images.get(event.image))?.target.digest).toBe(img.manifest.digest);
  });

  test('when feeders send no sequence, the layers are asked of the node pushed to first', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [300 << 10, 400 << 10]);
    const event = await pushEvent(origin, { image: 'docker.io/library/app:5', digest: img.manifest.digest, node: ORIGIN, clock: 1 }, [], pino({ level: 'silent' }));
    const { store, replicator, askedFirst } = taker(img.blobs);
    await replicator.replicate(event.image, event.digest, ORIGIN, { push, order: takerOrder(event.digest, ['peer-a', 'peer-b', 'peer-c', SELF]), inline: event.inline });
    expect(img.layers.map((l) => askedFirst.get(l.digest))).toEqual([ORIGIN, ORIGIN]);
    expect((await store.images.get(event.image))?.target.digest).toBe(img.manifest.digest);
  });

  test('among many takers, asks each feeder of the plan for its stripe of the layers, in the manifest\'s order', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [2 << 20, 1 << 20]);
    const event = await pushEvent(origin, { image: 'docker.io/library/app:6', digest: img.manifest.digest, node: ORIGIN, clock: 1 }, [], pino({ level: 'silent' }));
    const takers = [...'abcdefghij'].map((c) => `peer-${c}`).concat(SELF);
    const { replicator, asked } = taker(img.blobs, { sequences: true });
    await replicator.replicate(event.image, event.digest, ORIGIN, { push, order: takerOrder(event.digest, takers), inline: event.inline });
    const layers = img.layers.map((l) => ({ mediaType: 'x', ...l }));
    const plan = planFor(takerOrder(event.digest, takers), layers, ORIGIN, SELF);
    expect(asked.map((a) => a.peer)).toEqual(plan.feeders.filter((_, s) => plan.pieces[s].length > 0));
    expect(asked.map((a) => a.digests)).toEqual(plan.pieces.filter((p) => p.length > 0).map((p) => p.map((piece) => piece.digest)));
    expect(new Set(plan.feeders).size).toBeGreaterThan(1);
    // The root of a tree says so to the node pushed to, which keeps the roots level (mirror/level-sends.ts).
    expect(plan.feeders).toContain(ORIGIN);
    const levels = plan.feeders.map((f, s) => (f === ORIGIN ? { key: img.manifest.digest, lane: s, lanes: 4 } : undefined));
    expect(asked.map((a) => a.level)).toEqual(levels.filter((_, s) => plan.pieces[s].length > 0));
  });

  test('among many takers, each stripe\'s lanes carry the stand-ins the plan names for it, asked when its feeder stops', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [2 << 20]);
    const event = await pushEvent(origin, { image: 'docker.io/library/app:7', digest: img.manifest.digest, node: ORIGIN, clock: 1 }, [], pino({ level: 'silent' }));
    const takers = Array.from({ length: 40 }, (_, i) => `peer-${i}`).concat(SELF);
    const { replicator, standIns } = taker(img.blobs);
    await replicator.replicate(event.image, event.digest, ORIGIN, { push, order: takerOrder(event.digest, takers), inline: event.inline });
    const plan = planFor(takerOrder(event.digest, takers), img.layers.map((l) => ({ mediaType: 'x', ...l })), ORIGIN, SELF);
    expect(standIns.get(img.layers[0].digest)).toEqual(plan.standIns.filter((_, s) => plan.pieces[s].length > 0));
    expect(plan.standIns.flatMap((s) => s.ask).length).toBeGreaterThan(0);
  });

  test('among many takers, asks its feeders only for the layers it lacks, and is in the endgame once those are here', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [2 << 20, 2 << 20]);
    const event = await pushEvent(origin, { image: 'docker.io/library/app:10', digest: img.manifest.digest, node: ORIGIN, clock: 1 }, [], pino({ level: 'silent' }));
    const takers = [...'abcdefghij'].map((c) => `peer-${c}`).concat(SELF);
    const store = new MemoryStore();
    const [kept, lacking] = img.layers;
    await putBlob(store, img.blobs.get(kept.digest)!, kept.digest);
    const { replicator, asked, lanesOf } = taker(img.blobs, { sequences: true, store });
    await replicator.replicate(event.image, event.digest, ORIGIN, { push, order: takerOrder(event.digest, takers), inline: event.inline });
    const lanes = lanesOf.get(lacking.digest)!;
    expect(asked.flatMap((a) => a.digests)).toEqual(lanes.map(() => lacking.digest));
    const ready = { now: false };
    void lanes[0].endgame!.ready.then(() => (ready.now = true));
    for (const lane of lanes.slice(1)) lane.filled!();
    await new Promise((r) => setTimeout(r, 10));
    expect(ready.now).toBe(true);
  });

  test('among many takers, a blob that others bring before a feeder\'s stream gets to it does not wait for that feeder', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [2 << 20, 1 << 20]);
    const event = await pushEvent(origin, { image: 'docker.io/library/app:9', digest: img.manifest.digest, node: ORIGIN, clock: 1 }, [], pino({ level: 'silent' }));
    const takers = [...'abcdefghij'].map((c) => `peer-${c}`).concat(SELF);
    const { store, replicator, asked, closed } = taker(img.blobs, { sequences: true, stuck: true });
    const done = replicator.replicate(event.image, event.digest, ORIGIN, { push, order: takerOrder(event.digest, takers), inline: event.inline });
    expect(await Promise.race([done.then(() => 'replicated'), new Promise((r) => setTimeout(r, 2000, 'waiting for the feeders'))])).toBe('replicated');
    expect((await store.images.get(event.image))?.target.digest).toBe(img.manifest.digest);
    expect(new Set(closed)).toEqual(new Set(asked.map((a) => a.peer)));
  });

  test('among many takers, a stripe\'s lanes are in their endgame, with the plan\'s helpers, once every lane of the other stripes is filled', async () => {
    const origin = new MemoryStore();
    const img = await pushedImage(origin, [2 << 20, 2 << 20]);
    const event = await pushEvent(origin, { image: 'docker.io/library/app:8', digest: img.manifest.digest, node: ORIGIN, clock: 1 }, [], pino({ level: 'silent' }));
    const takers = Array.from({ length: 40 }, (_, i) => `peer-${i}`).concat(SELF);
    const { replicator, lanesOf } = taker(img.blobs);
    await replicator.replicate(event.image, event.digest, ORIGIN, { push, order: takerOrder(event.digest, takers), inline: event.inline });
    const plan = planFor(takerOrder(event.digest, takers), img.layers.map((l) => ({ mediaType: 'x', ...l })), ORIGIN, SELF);
    // Each layer has a lane per stripe, in stripe order.
    const lanes = img.layers.map((l) => lanesOf.get(l.digest)!);
    expect(lanes.map((l) => l.length)).toEqual([4, 4]);
    lanes.forEach((l) => l.forEach((lane, s) => expect(lane.endgame?.helpers).toEqual(plan.helpers[s])));
    const ready = [0, 1, 2, 3].map((s) => {
      const state = { ready: false };
      void lanes[0][s].endgame!.ready.then(() => (state.ready = true));
      return state;
    });
    const settle = () => new Promise((r) => setTimeout(r, 10));
    for (const s of [1, 2, 3]) lanes[0][s].filled!();
    for (const s of [1, 2]) lanes[1][s].filled!();
    await settle();
    expect(ready.map((r) => r.ready)).toEqual([false, false, false, false]);
    lanes[1][3].filled!();
    await settle();
    expect(ready.map((r) => r.ready)).toEqual([true, false, false, false]);
  });

  test('of two pushes of a name copied at once, the newer names the image even when the store answers the older last', async () => {
    const origin = new MemoryStore();
    const [older, newer] = [await pushedImage(origin, [1000]), await pushedImage(origin, [2000])];
    const store = new MemoryStore();
    // containerd answers concurrent calls in any order: here the first look-up of the name comes back last,
    // while the newer push is still being copied.
    const get = store.images.get.bind(store.images);
    let calls = 0;
    store.images.get = async (name) => {
      if (calls++ === 0) await new Promise((r) => setTimeout(r, 20));
      return get(name);
    };
    const { replicator, pushes } = taker(new Map([...older.blobs, ...newer.blobs]), { store, fetchMs: 50 });
    const name = 'docker.io/library/same:1';
    const stamps = [{ clock: 1, node: 'a' }, { clock: 2, node: 'b' }];
    const copies = [older, newer].map((img, i) => {
      pushes.observe(name, { ...stamps[i], digest: img.manifest.digest }); // as the push follower does, in arrival order
      return replicator.replicate(name, img.manifest.digest, ORIGIN, { push: stamps[i], order: [SELF] });
    });
    await Promise.all(copies);
    expect((await store.images.get(name))?.target.digest).toBe(newer.manifest.digest);
  });
});
