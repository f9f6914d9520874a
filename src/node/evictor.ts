// Keeps the disk below its watermarks by evicting what the mesh brought (replicated images, blobs the mirror
// cached), least recently used first, the fleet's last copies last; removes images on request (meshctl rm,
// prune, rm --mesh). Never evicts what a container uses, what is being copied here or arriving, blobs of a
// push whose manifest has not come yet, nor what this host's users pushed or pulled (unless --evict-local).
import type { Logger } from 'pino';
import type { Router } from '../dht/router.js';
import type { Store } from '../store/store.js';
import type { DiskUsage, EvictedEntry, EvictionReport } from '../api/admin-types.js';
import { categorize, categoryOf, filesystemOf, survey, type HeldImage, type Survey } from './disk-usage.js';
import { planEviction, type Candidate, type Planned, type Watermark } from './eviction.js';
import type { EventLog } from './event-log.js';
import type { UseLog } from './use-log.js';

/** How long a lookup of the other holders of one candidate may take; unanswered counts as none. */
const COPIES_LOOKUP_MS = 3_000;
const LOOKUPS_AT_ONCE = 4;

/** Eviction cannot run as this node is set up (no watermarks, or percentages without a filesystem): the operator's to fix. */
/** Whether an image's blobs include one in transfer: its record holds that blob until the copy names its own. */
const sharesAny = (blobs: string[], inFlight: Set<string>) => blobs.some((d) => inFlight.has(d));

export class EvictionSetupError extends Error {
  override name = 'EvictionSetupError';
}

export interface EvictorDeps {
  store: Store;
  router: Pick<Router, 'id' | 'findProviders'>;
  uses: UseLog;
  /** Image names and digests being copied here or arriving now. */
  inFlight(): Set<string>;
  watermarks?: { high: Watermark; low: Watermark };
  minCopies: number;
  /** Whether images this host's users pushed or pulled may be evicted too. */
  evictLocal: boolean;
  /** Blobs no image references that arrived within this long may be a push's, its manifest still to come. */
  uploadGraceMs: number;
  intervalMs: number;
  log: Logger;
  events: EventLog;
  /** This node's name, in the event log. */
  node: string;
  /** Told of every eviction and removal (metrics count them). */
  onEvicted?(entry: EvictedEntry): void;
  /** After anything was removed: the announcements follow the store at once. */
  removed(): Promise<void>;
}

interface Measure {
  measured: number;
  high: number;
  low: number;
}

export class Evictor {
  #queue: Promise<unknown> = Promise.resolve();
  #timer?: NodeJS.Timeout;

  constructor(private readonly deps: EvictorDeps) {}

  start(): void {
    if (!this.deps.watermarks) return;
    this.#timer = setInterval(() => {
      this.check().catch((err: Error) => this.deps.log.error({ err: err.message }, 'disk check failed'));
    }, this.deps.intervalMs);
    this.#timer.unref();
  }

  stop(): void {
    clearInterval(this.#timer);
  }

  /** One run at a time: a check, a prune and a removal never plan on what another is removing. */
  #serial<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work);
    this.#queue = run.catch(() => undefined);
    return run;
  }

  async usage(): Promise<DiskUsage> {
    const held = await survey(this.deps.store);
    const filesystem = await filesystemOf(this.deps.store.contentDir);
    const totals = categorize(held);
    const now = Date.now();
    return {
      ...totals,
      ...(filesystem && { filesystem }),
      ...(this.deps.watermarks && { watermarks: this.#measure(totals.total, filesystem) }),
      images: held.images.map((i) => ({
        name: i.record.name,
        digest: i.record.target.digest,
        origin: i.origin,
        pinned: i.pinned,
        bytes: i.blobs.reduce((n, d) => n + held.sizes.get(d)!, 0),
        lastUse: new Date(this.deps.uses.lastUse([i.record.name, i.record.target.digest], now)).toISOString(),
      })),
    };
  }

  /** Byte marks measure what the store holds; percentages, how full its filesystem is. */
  #measure(total: number, fs: { size: number; free: number } | undefined): Measure {
    const { high, low } = this.deps.watermarks!;
    if ('bytes' in high && 'bytes' in low) return { measured: total, high: high.bytes, low: low.bytes };
    if (!fs) throw new EvictionSetupError('percentage watermarks need a store on a filesystem; give sizes');
    // Both are percentages here (checkWatermarks refuses a mix).
    const of = (w: Watermark) => Math.floor(((w as { percent: number }).percent / 100) * fs.size);
    return { measured: fs.size - fs.free, high: of(high), low: of(low) };
  }

  /** Evicts down to the low mark when above the high one. */
  check(): Promise<EvictionReport> {
    return this.#serial(async () => {
      const held = await survey(this.deps.store);
      this.#noteArrivals(held);
      const m = this.#measure(categorize(held).total, await filesystemOf(this.deps.store.contentDir));
      if (m.measured <= m.high) return { evicted: [], freed: 0 };
      return this.#evictTo(held, m, 'above the high watermark');
    });
  }

  /** What was never used counts from when it arrived, within a check's interval: asking notes it. */
  #noteArrivals({ images, sizes }: Survey): void {
    const now = Date.now();
    for (const i of images) this.deps.uses.lastUse([i.record.name, i.record.target.digest], now);
    const referenced = new Set(images.flatMap((i) => i.blobs));
    for (const digest of sizes.keys()) if (!referenced.has(digest)) this.deps.uses.lastUse([digest], now);
  }

  /** Evicts down to the low mark now. */
  prune(): Promise<EvictionReport> {
    return this.#serial(async () => {
      if (!this.deps.watermarks) throw new EvictionSetupError('prune evicts down to --disk-low, and this node has none');
      const held = await survey(this.deps.store);
      const m = this.#measure(categorize(held).total, await filesystemOf(this.deps.store.contentDir));
      return this.#evictTo(held, m, 'prune');
    });
  }

  async #evictTo(held: Survey, m: Measure, reason: string): Promise<EvictionReport> {
    const { log } = this.deps;
    const excess = m.measured - m.low;
    if (excess <= 0) return { evicted: [], freed: 0 };
    const { candidates, kept } = this.#candidates(held);
    // Nothing may go (a disk full of pinned or local images): no lookups, and no second survey, at every check.
    let still: Candidate[] = [];
    if (candidates.length > 0) {
      await this.#countCopies(candidates);
      still = this.#unchanged(candidates, kept, await survey(this.deps.store));
    }
    const plan = planEviction({ candidates: still, sizes: held.sizes, kept, excess, minCopies: this.deps.minCopies });
    const evicted: EvictedEntry[] = [];
    for (const p of plan.evict) {
      const entry = await this.#evict(p, reason);
      if (entry) evicted.push(entry);
    }
    const freed = evicted.reduce((n, e) => n + e.bytes, 0);
    let short: string | undefined;
    if (freed < excess) {
      short = `${excess - freed} bytes above the low mark remain: the rest is pinned, local, in transfer or too new`;
      log.warn({ ...m, freed, excess }, 'cannot evict down to the low watermark: nothing else may go');
    }
    if (evicted.length) await this.deps.removed();
    return { evicted, freed, ...(short && { kept: short }) };
  }

  /** What may go, and the blobs of everything that stays. */
  #candidates({ images, sizes }: Survey): { candidates: Candidate[]; kept: Set<string> } {
    const inFlight = this.deps.inFlight();
    const now = Date.now();
    // An image sharing a blob with a copy under way waits for the next check: without its record, nothing would hold
    // that blob until the copy names its own (containerd's collector, the embedded store's sweep would take it).
    const evictable = (i: HeldImage) => !i.pinned && !inFlight.has(i.record.name) && !inFlight.has(i.record.target.digest)
      && !sharesAny(i.blobs, inFlight) && (categoryOf(i) === 'replicated' || this.deps.evictLocal);
    const candidates: Candidate[] = [];
    // A blob being copied here for a new image may be one an old image shares: it stays.
    const kept = new Set<string>(inFlight);
    const referenced = new Set<string>();
    for (const i of images) {
      for (const d of i.blobs) referenced.add(d);
      if (!evictable(i)) {
        for (const d of i.blobs) kept.add(d);
        continue;
      }
      const lastUse = this.deps.uses.lastUse([i.record.name, i.record.target.digest], now);
      candidates.push({ key: i.record.name, digest: i.record.target.digest, kind: 'image', lastUse, copies: 0, blobs: i.blobs });
    }
    for (const digest of sizes.keys()) {
      if (referenced.has(digest) || inFlight.has(digest)) continue;
      const lastUse = this.deps.uses.lastUse([digest], now);
      if (now - lastUse < this.deps.uploadGraceMs) continue;
      candidates.push({ key: digest, digest, kind: 'cache', lastUse, copies: 0, blobs: [digest] });
    }
    return { candidates, kept };
  }

  /**
   * The candidates still as they were surveyed, after the lookups (seconds): an image pushed meanwhile may use
   * a candidate's blobs (its client found them here and did not send them), so its blobs join `kept`, as do
   * those of an image that changed or is now in use, which is no longer a candidate.
   */
  #unchanged(candidates: Candidate[], kept: Set<string>, now: Survey): Candidate[] {
    const planned = new Map(candidates.filter((c) => c.kind === 'image').map((c) => [c.key, c.digest]));
    const still = new Set<string>();
    for (const i of now.images) {
      if (!i.pinned && planned.get(i.record.name) === i.record.target.digest) still.add(i.record.name);
      else for (const d of i.blobs) kept.add(d);
    }
    return candidates.filter((c) => c.kind === 'cache' || still.has(c.key));
  }

  /** How many other nodes announce each candidate (tags by name, cached blobs by digest). */
  async #countCopies(candidates: Candidate[]): Promise<void> {
    const { router } = this.deps;
    let next = 0;
    const worker = async () => {
      for (let c = candidates[next++]; c; c = candidates[next++]) {
        const key = c.kind === 'image' && !c.key.includes('@') ? c.key : c.digest;
        const others = new Set<string>();
        try {
          for await (const p of router.findProviders(key, AbortSignal.timeout(COPIES_LOOKUP_MS))) if (p.id !== router.id) others.add(p.id);
        } catch (err) {
          this.deps.log.debug({ key, err: (err as Error).message }, 'lookup of other holders ended early');
        }
        c.copies = others.size;
      }
    };
    await Promise.all(Array.from({ length: LOOKUPS_AT_ONCE }, worker));
  }

  /** Removes one planned candidate, unless a copy to here began since it was planned. */
  async #evict(p: Planned, reason: string): Promise<EvictedEntry | undefined> {
    const { store, log } = this.deps;
    const { candidate: c } = p;
    const inFlight = this.deps.inFlight();
    if (inFlight.has(c.key) || inFlight.has(c.digest) || (c.kind === 'image' && sharesAny(c.blobs, inFlight))) return undefined;
    if (c.kind === 'image') await store.images.delete(c.key);
    for (const d of p.freedBlobs) if (!inFlight.has(d)) await store.delete(d);
    this.deps.uses.forget(c.key);
    const entry: EvictedEntry = { image: c.key, digest: c.digest, bytes: p.bytes, reason, copies: c.copies };
    if (p.lastCopies) log.warn({ ...entry, minCopies: this.deps.minCopies }, 'evicting though fewer than --min-copies other nodes hold it: nothing else could go');
    this.#record(entry);
    return entry;
  }

  #record(entry: EvictedEntry): void {
    this.deps.log.info(entry, 'evicted');
    this.deps.events.record({ kind: 'evicted', image: entry.image, digest: entry.digest, node: this.deps.node, detail: entry.reason });
    this.deps.onEvicted?.(entry);
  }

  /** Removes an image from this node (meshctl rm): refused while a container uses it. */
  remove(name: string, reason: string): Promise<EvictionReport> {
    return this.#serial(async () => {
      const held = await survey(this.deps.store);
      const image = held.images.find((i) => i.record.name === name);
      if (!image) return { evicted: [], freed: 0, kept: `${name} is not held here` };
      if (image.pinned) {
        this.deps.log.warn({ image: name, reason }, 'not removing an image a container uses');
        return { evicted: [], freed: 0, kept: `a container on ${this.deps.node} uses ${name}` };
      }
      const inFlight = this.deps.inFlight();
      // Its record holds the blobs it shares with a copy under way until the copy names its image (see #candidates).
      if (sharesAny(image.blobs, inFlight)) {
        return { evicted: [], freed: 0, kept: `${name} shares blobs with an image being copied here now: try again once that copy ends`, untilCopied: true };
      }
      const others = new Set(held.images.filter((i) => i !== image).flatMap((i) => i.blobs));
      const freedBlobs = image.blobs.filter((d) => !others.has(d));
      const bytes = freedBlobs.reduce((n, d) => n + held.sizes.get(d)!, 0);
      await this.deps.store.images.delete(name);
      for (const d of freedBlobs) await this.deps.store.delete(d);
      this.deps.uses.forget(name);
      const entry: EvictedEntry = { image: name, digest: image.record.target.digest, bytes, reason };
      this.#record(entry);
      await this.deps.removed();
      return { evicted: [entry], freed: bytes };
    });
  }
}
