import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MemoryMesh } from '../dht/memory-router.js';
import { MemoryStore } from '../store/memory-store.js';
import { put, putImage, record } from '../store/conformance-kit.js';
import { ORIGIN_LABEL } from '../store/store.js';
import type { EvictedEntry } from '../api/admin-types.js';
import { EventLog } from './event-log.js';
import { Evictor, type EvictorDeps } from './evictor.js';
import { TotalsCache } from './disk-totals.js';
import { UseLog } from './use-log.js';

const log = pino({ level: 'silent' });
const replicated = { [ORIGIN_LABEL]: 'replicated' };

describe('Evictor on a memory store', () => {
  let dir: string;
  let store: MemoryStore;
  let uses: UseLog;
  let deps: EvictorDeps;
  let evictor: Evictor;
  let counted: EvictedEntry[];
  let events: EventLog;
  const inFlight = new Set<string>();

  beforeEach(async () => {
    dir = await mkdtemp(join(tmpdir(), 'evictor-'));
    store = new MemoryStore();
    Object.assign(store, { containerImages: async () => new Set(['pinned:1']) });
    uses = await UseLog.open(join(dir, 'last-use.json'), log);
    const mesh = new MemoryMesh();
    const self = mesh.join({ id: 'self' });
    const others = [mesh.join({ id: 'b' }), mesh.join({ id: 'c' })];
    counted = [];
    events = new EventLog();
    deps = {
      store, router: self, uses, inFlight: () => inFlight, watermarks: { high: { bytes: 1 }, low: { bytes: 0 } },
      minCopies: 2, evictLocal: false, uploadGraceMs: 0, intervalMs: 60_000, log, events, node: 'self',
      onEvicted: (e) => counted.push(e), removed: async () => {},
    };
    evictor = new Evictor(deps);
    for (const [name, labels, holders] of [
      ['old:1', replicated, others], ['new:1', replicated, others], ['solo:1', replicated, []],
      ['pushed:1', { [ORIGIN_LABEL]: 'pushed' }, others], ['pulled:1', {}, others], ['pinned:1', replicated, others], ['busy:1', replicated, others],
    ] as const) {
      await store.images.put(record(name, await putImage(store), labels));
      for (const h of holders) h.announce({ add: [name] });
    }
    const cached = await put(store, Buffer.from('a layer the mirror brought'));
    for (const h of others) h.announce({ add: [cached.digest] });
    inFlight.clear();
    inFlight.add('busy:1');
    uses.touch('solo:1', 500); // the oldest, but nobody else holds it
    uses.touch(cached.digest, 1000);
    uses.touch('old:1', 2000);
    uses.touch('new:1', 3000);
  });
  afterEach(async () => {
    await uses.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('prunes least recently used first, the last copies last, and leaves pinned, local and busy images', async () => {
    const before = await evictor.usage();
    const report = await evictor.prune();
    expect(report.evicted.map((e) => e.image)).toEqual([expect.stringMatching(/^sha256:/), 'old:1', 'new:1', 'solo:1']);
    expect(report.evicted.map((e) => e.copies)).toEqual([2, 2, 2, 0]);
    expect(report.kept).toMatch(/bytes above the low mark remain/);
    expect((await store.images.list()).map((r) => r.name).sort()).toEqual(['busy:1', 'pinned:1', 'pulled:1', 'pushed:1']);
    const after = await evictor.usage();
    expect(before.total - after.total).toBe(report.freed);
    expect(after).toMatchObject({ replicated: after.images.find((i) => i.name === 'busy:1')!.bytes, cache: 0 });
    expect(counted).toEqual(report.evicted);
    expect(events.since(0).map((e) => [e.kind, e.image, e.detail])).toContainEqual(['evicted', 'old:1', 'prune']);
  });

  it("gives df's totals to a page polling every second from one survey every few seconds, not one each", async () => {
    const list = store.images.list.bind(store.images);
    let surveys = 0;
    store.images.list = async () => (surveys++, list());
    const full = await evictor.usage();
    surveys = 0;
    const totals = new TotalsCache(store, log);
    const first = await totals.summary();
    const second = await totals.summary();
    expect(surveys).toBe(1);
    expect(second).toEqual(first);
    expect(first).toEqual({ total: full.total, pinned: full.pinned, pushed: full.pushed, pulled: full.pulled, replicated: full.replicated, cache: full.cache });
  });

  it('gives no totals while the store cannot be surveyed, trying again every few seconds and warning once', async () => {
    const lines: string[] = [];
    const failing = new TotalsCache(store, pino({ level: 'warn' }, { write: (l: string) => void lines.push(JSON.parse(l).msg) }));
    let surveys = 0;
    store.images.list = async () => {
      surveys++;
      throw new Error('containerd: connection refused');
    };
    for (let i = 0; i < 5; i++) expect(await failing.summary()).toBeUndefined();
    expect(surveys).toBe(1);
    expect(lines).toHaveLength(1);
  });

  it('adds up df categories, each blob once', async () => {
    const df = await evictor.usage();
    expect(df.pinned + df.pushed + df.pulled + df.replicated + df.cache).toBe(df.total);
    expect(df.cache).toBe('a layer the mirror brought'.length);
    expect(df.images.find((i) => i.name === 'pinned:1')).toMatchObject({ pinned: true, origin: 'replicated' });
    expect(df.images.find((i) => i.name === 'pulled:1')).toMatchObject({ pinned: false, origin: 'pulled' });
  });

  it('removes any image on request, but not one a container uses', async () => {
    expect(await evictor.remove('pinned:1', 'rm')).toMatchObject({ evicted: [], kept: 'a container on self uses pinned:1' });
    const removed = await evictor.remove('pushed:1', 'rm');
    expect(removed.evicted).toEqual([expect.objectContaining({ image: 'pushed:1', reason: 'rm' })]);
    expect(removed.freed).toBeGreaterThan(5000);
    expect(await store.images.get('pushed:1')).toBeUndefined();
    expect(await evictor.remove('pushed:1', 'rm')).toMatchObject({ kept: 'pushed:1 is not held here' });
  });

  it('removes an image sharing a blob with a copy under way only once the copy ended: until then its record holds the blob', async () => {
    const old = (await store.images.get('old:1'))!;
    inFlight.add(old.target.digest);
    const refused = await evictor.remove('old:1', 'rm');
    expect(refused).toMatchObject({ evicted: [], untilCopied: true, kept: expect.stringMatching(/being copied here now: try again once that copy ends/) });
    expect(await store.images.get('old:1')).toBeDefined();
    inFlight.delete(old.target.digest);
    expect((await evictor.remove('old:1', 'rm')).evicted).toHaveLength(1);
  });

  it('does not evict an image sharing a blob with a copy under way (nothing else would hold the blob), until the copy ends', async () => {
    const old = (await store.images.get('old:1'))!;
    const { stream } = await store.open(old.target.digest);
    const layer = (JSON.parse(Buffer.concat(await stream.toArray()).toString('utf8')) as { layers: { digest: string }[] }).layers[0].digest;
    inFlight.add(layer); // a new version of the image being copied here, sharing its base layer
    const during = await evictor.prune();
    expect(during.evicted.map((e) => e.image)).not.toContain('old:1');
    expect(await store.images.get('old:1')).toBeDefined();
    inFlight.delete(layer);
    expect((await evictor.prune()).evicted.map((e) => e.image)).toContain('old:1');
  });

  it('keeps the blobs an image pushed while it looked up other holders uses (its client found them here and sent none)', async () => {
    const old = (await store.images.get('old:1'))!;
    const { stream } = await store.open(old.target.digest);
    const manifest = JSON.parse(Buffer.concat(await stream.toArray()).toString('utf8')) as { config: unknown; layers: { digest: string }[] };
    const layer = manifest.layers[0].digest;
    let lookedUp!: () => void;
    const lookups = new Promise<void>((resolve) => (lookedUp = resolve));
    let gate!: () => void;
    const opened = new Promise<void>((resolve) => (gate = resolve));
    const router = deps.router;
    const gated = new Evictor({
      ...deps,
      router: Object.assign(Object.create(router) as typeof router, {
        async *findProviders(key: string, signal?: AbortSignal) {
          lookedUp();
          await opened;
          yield* router.findProviders(key, signal);
        },
      }),
    });
    const pruning = gated.prune();
    await lookups;
    // A push of app:2, whose only layer is old:1's: skopeo found it here, so only the manifest came.
    const body = Buffer.from(JSON.stringify({ ...manifest, annotations: { pushed: 'later' } }));
    const pushed = await put(store, body);
    await store.images.put(record('app:2', { mediaType: 'application/vnd.oci.image.manifest.v1+json', digest: pushed.digest, size: body.length }, { [ORIGIN_LABEL]: 'pushed' }));
    gate();
    const report = await pruning;
    expect(report.evicted.map((e) => e.image)).toContain('old:1');
    expect(await store.stat(layer), "old:1's layer, which app:2 uses").toBeDefined();
  });

  it('does nothing on a check below the high mark', async () => {
    const roomy = new Evictor({ ...deps, watermarks: { high: { bytes: 1 << 30 }, low: { bytes: 1 << 29 } } });
    expect(await roomy.check()).toEqual({ evicted: [], freed: 0 });
    expect((await store.images.list()).length).toBe(7);
  });
});
