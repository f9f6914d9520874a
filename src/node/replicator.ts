// Copies an image pushed to another node (push-follower.ts decides which): manifests and configs (inlined
// in the push's gossip, else from the node pushed to), then every layer through the mirror, then the image
// record under the same name, if the push is still the newest of that name (tag-records.ts). From then on
// this node holds the image and announces it like anything else in its store.
//
// Fan-out without a herd and without a long chain: every taker computes the same plan (replication-plan.ts):
// each layer cut into stripes, each stripe carried down a k-ary tree of the takers, so each node sends
// about one copy and the last is log_k N hops from the node pushed to. A taker asks each of its feeders for
// its stripe of every blob on one stream (a sequence of pieces, in manifest order), which the feeder serves
// from its partial copy as it arrives; the pieces of a blob land in one spool as lanes (mirror/lanes.ts). A
// feeder that is gone or breaks off is replaced for the rest of its stripe by its stand-ins, nodes whose
// upload its death freed (replication-plan.ts), then by the node pushed to.
import type { Logger } from 'pino';
import { putBlob, type Store } from '../store/store.js';
import { digestOf, type Descriptor } from '../oci/digest.js';
import type { Membership } from '../dht/membership.js';
import type { BlobSource, SourceSequence } from '../mirror/blob-sequence.js';
import type { Lane } from '../mirror/lanes.js';
import type { FetchOptions, Fetching } from '../mirror/mirror-options.js';
import type { Piece, SequenceLevel } from '../mirror/peer-protocol.js';
import { levelOf, planFor, type TakerPlan } from './replication-plan.js';
import { endgameOf } from './stripe-endgame.js';
import { children, isIndexMediaType, MANIFEST_MEDIA_TYPES, parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { readManifest } from '../oci/references.js';
import type { ImageFetch } from '../api/admin-types.js';
import { comparePushes, type TagPush } from '../oci/tag-push.js';
import type { TagRecords } from './tag-records.js';
import { replicatedBytes, replications, replicationSeconds, replicationsInProgress } from './replication-metrics.js';

/** The part of the mirror that replication takes its bytes through. */
export interface ReplicationSource {
  fetch(digest: string, options: FetchOptions): Fetching;
  /** `pieces` of blobs from `peer` on one stream, in this order. */
  openSequence(peer: string, pieces: Piece[], level?: SequenceLevel): Promise<SourceSequence>;
  /** Blobs arriving now and the bytes of each that are here. */
  arriving(): Map<string, number>;
}

export interface ReplicateOptions {
  /** The push's stamp: the image record is written only while it is the newest push of the name known. */
  push: TagPush;
  /** The takers in the image's order (replication-plan.ts takerOrder), this node among them unless the node pushed to did not know it. */
  order?: string[];
  inline?: Record<string, string>;
}

export interface ReplicatorDeps {
  store: Store;
  /** Writes the image records of copied pushes. */
  records: TagRecords;
  /** This node's id. */
  membership: Pick<Membership, 'self'>;
  mirror: ReplicationSource;
  log: Logger;
  /** Told how each copy ended (the status page's recent events). */
  ended?(image: string, digest: string, outcome: ReplicationOutcome): void;
}

export type ReplicationOutcome = 'replicated' | 'superseded' | 'failed';

interface Active {
  digest: string;
  /** The manifests an index names; `blobs`: every other blob, once each. */
  manifests: string[];
  blobs: Descriptor[];
  /** The stamp the copy names the image with: the newest push of this digest asked for while it runs. */
  push: TagPush;
  done: Promise<void>;
}

export class Replicator {
  readonly #active = new Map<string, Active>();

  constructor(private readonly deps: ReplicatorDeps) {}

  /** The digest of `image` being copied here now, if any. */
  copying(image: string): string | undefined {
    return this.#active.get(image)?.digest;
  }

  /**
   * Copies `image` (root manifest `digest`, pushed with stamp `push`) from the mesh. `pushedTo` holds it
   * whole; `order` has the nodes copying it too, which decide where each blob is taken
   * from; `inline` has small blobs that came with the push's gossip (base64 by digest), kept when they verify.
   */
  replicate(image: string, digest: string, pushedTo: string, options: ReplicateOptions): Promise<void> {
    const running = this.#active.get(image);
    if (running?.digest === digest) {
      // The same image pushed again while it is copied: that copy names it, with the newer push's stamp (the
      // older one no longer may), and this call ends as it does.
      if (comparePushes(options.push, running.push) > 0) running.push = options.push;
      return running.done;
    }
    // Claimed before the first await: of two copies of one name, the one asked for last is the one that may
    // name the image, whatever order the store answers them in.
    const active: Active = { digest, manifests: [], blobs: [], push: options.push, done: Promise.resolve() };
    this.#active.set(image, active);
    active.done = (async () => {
      try {
        const current = await this.deps.store.images.get(image);
        // The same image pushed again: only its stamp changes.
        if (current?.target.digest === digest) await this.#name(image, current.target, active);
        else await this.#copy(image, pushedTo, options, active);
      } finally {
        if (this.#active.get(image) === active) this.#active.delete(image);
      }
    })();
    return active.done;
  }

  async #copy(image: string, pushedTo: string, { order = [], inline = {} }: ReplicateOptions, active: Active): Promise<void> {
    const { digest } = active;
    const started = performance.now();
    replicationsInProgress.inc();
    let outcome: ReplicationOutcome = 'failed';
    const given = this.#verified(inline);
    // Inlined blobs and verified layers go into the store while other layers arrive; the image record waits for all.
    const storing: Promise<void>[] = [];
    const pending = (work: Promise<void>) => {
      work.catch(() => undefined); // awaited below; a layer failing first must not leave it unhandled
      storing.push(work);
    };
    const keep = (blob: string, bytes: Buffer) => pending(this.#put(blob, bytes));
    try {
      const root = await this.#manifest({ digest }, pushedTo, given, keep);
      const manifests = [root];
      if (isIndexMediaType(root.manifest.mediaType)) {
        for (const child of root.manifest.manifests) manifests.push(await this.#manifest(child, pushedTo, given, keep));
      }
      const referenced = manifests.flatMap((m) => children(m.manifest));
      // An index's manifests, here from the start, are in transfer too: eviction must leave them to the copy.
      active.manifests = referenced.filter((d) => MANIFEST_MEDIA_TYPES.includes(d.mediaType)).map((d) => d.digest);
      // Once each (platforms of an index share layers), in the manifests' order: the same on every taker.
      const blobs = [...new Map(referenced.filter((d) => !MANIFEST_MEDIA_TYPES.includes(d.mediaType)).map((b) => [b.digest, b])).values()];
      active.blobs = blobs;
      for (const blob of blobs) {
        const bytes = given.get(blob.digest);
        if (bytes) keep(blob.digest, bytes);
      }
      const wanted = blobs.filter((b) => !given.has(b.digest));
      const plan = planFor(order, wanted, pushedTo, this.deps.membership.self);
      await this.#striped(digest, wanted, plan, pushedTo, pending);
      await Promise.all(storing);
      // A later push of the same name may have started meanwhile, or be known by now: the newest one names the image.
      const target = { mediaType: root.manifest.mediaType, digest, size: root.body.length };
      if (this.#active.get(image) !== active || !(await this.#name(image, target, active))) {
        outcome = 'superseded';
        return;
      }
      const bytes = blobs.reduce((n, b) => n + b.size, 0);
      const seconds = (performance.now() - started) / 1000;
      replicatedBytes.inc(bytes);
      replicationSeconds.observe(seconds);
      outcome = 'replicated';
      this.deps.log.info({ image, digest, blobs: blobs.length, bytes, seconds }, 'replicated');
    } finally {
      replicationsInProgress.dec();
      replications.inc({ outcome });
      this.deps.ended?.(image, digest, outcome);
    }
  }

  /** Names the image with the copy's stamp, again if a newer push of it joined while the record was written. */
  async #name(image: string, target: Descriptor, active: Active): Promise<boolean> {
    let named = false;
    for (let push: TagPush | undefined; push !== active.push; ) {
      push = active.push;
      named = await this.deps.records.write(image, target, push);
    }
    return named;
  }

  /** The image was removed from the mesh (rm --mesh): a copy of it under way ends without naming it. */
  cancel(image: string): void {
    if (this.#active.delete(image)) this.deps.log.info({ image }, 'copy cancelled: the image was removed from the mesh');
  }

  /** Names and digests of what is being copied here now: eviction leaves them alone. */
  inFlight(): Set<string> {
    return new Set([...this.#active].flatMap(([image, { digest, manifests, blobs }]) => [image, digest, ...manifests, ...blobs.map((b) => b.digest)]));
  }

  /** Images being copied here now, with the bytes of their blobs that are here. */
  async progress(): Promise<ImageFetch[]> {
    const arriving = this.deps.mirror.arriving();
    return Promise.all([...this.#active].map(async ([image, { digest, blobs }]) => {
      let bytes = 0;
      for (const blob of blobs) bytes += arriving.get(blob.digest) ?? ((await this.deps.store.stat(blob.digest)) ? blob.size : 0);
      return { image, digest, bytes, total: blobs.reduce((n, b) => n + b.size, 0) };
    }));
  }

  /** A manifest from the push's gossip when it came with it, else from the node pushed to, through the mirror. */
  async #manifest(desc: { digest: string; mediaType?: string }, pushedTo: string, given: Map<string, Buffer>, keep: (digest: string, bytes: Buffer) => void): Promise<{ body: Buffer; manifest: ParsedManifest }> {
    const body = given.get(desc.digest);
    if (body) {
      const manifest = parseManifest(body, desc.mediaType);
      keep(desc.digest, body);
      return { body, manifest };
    }
    await arrived(this.deps.mirror.fetch(desc.digest, { from: [pushedTo], patient: true }).stored, desc.digest);
    const found = await readManifest(this.deps.store, desc.digest, desc.mediaType);
    if (!found) throw new Error(`manifest ${desc.digest} vanished from the store`);
    return found;
  }

  /** The inlined blobs whose bytes match their digest; the others are fetched like the rest. */
  #verified(inline: Record<string, string>): Map<string, Buffer> {
    const given = new Map<string, Buffer>();
    for (const [digest, base64] of Object.entries(inline)) {
      const bytes = Buffer.from(base64, 'base64');
      if (digestOf(bytes) === digest) given.set(digest, bytes);
      else this.deps.log.warn({ digest, actual: digestOf(bytes) }, 'a blob inlined in the push gossip does not match its digest; fetching it instead');
    }
    return given;
  }

  async #put(digest: string, bytes: Buffer): Promise<void> {
    if (!(await this.deps.store.stat(digest))) await putBlob(this.deps.store, bytes, digest);
  }

  /** Takes every blob in its stripes, each from its feeder on one stream (a blob's fetch begins with its first piece); stored copies go to `pending`. */
  async #striped(push: string, blobs: Descriptor[], plan: TakerPlan, pushedTo: string, pending: (storing: Promise<void>) => void): Promise<void> {
    const fetches = new Map<string, { verified: Promise<void>; lanes: Map<number, (source: BlobSource | undefined) => void> }>();
    // What this taker holds already (an earlier image's layers) is not asked of its feeders.
    const held = new Set((await Promise.all(blobs.map(async (b) => ((await this.deps.store.stat(b.digest)) ? b.digest : '')))).filter(Boolean));
    const taking = plan.pieces.map((pieces) => pieces.filter((p) => !held.has(p.digest)));
    const endgame = endgameOf(taking);
    const fetchOf = (blob: Descriptor) => {
      let entry = fetches.get(blob.digest);
      if (entry) return entry;
      const feeds = new Map<number, (source: BlobSource | undefined) => void>();
      const lanes: Lane[] = plan.pieces.flatMap((pieces, s) => pieces.filter((p) => p.digest === blob.digest).map((p) => ({
        offset: p.offset, length: p.length, standIns: plan.standIns[s], source: new Promise<BlobSource | undefined>((resolve) => feeds.set(s, resolve)),
        endgame: { ready: endgame.ready[s], helpers: plan.helpers[s] }, filled: () => endgame.filled(s),
      })));
      const { verified, stored } = this.deps.mirror.fetch(blob.digest, { from: [pushedTo], patient: true, lanes: { size: blob.size, lanes } });
      pending(arrived(stored, blob.digest));
      entry = { verified: arrived(verified, blob.digest), lanes: feeds };
      entry.verified.catch(() => undefined); // awaited below
      fetches.set(blob.digest, entry);
      return entry;
    };
    const byDigest = new Map(blobs.map((b) => [b.digest, b]));
    await Promise.all(taking.map(async (pieces, s) => {
      // A tree's root says so: the node pushed to keeps the roots' sequences level (mirror/level-sends.ts).
      const level = plan.feeders[s] === pushedTo && plan.feeders.length > 1 ? levelOf(push, plan.pieces, pieces, s) : undefined;
      const sequence = await this.#sequence(plan.feeders[s], pieces, level);
      try {
        for (const piece of pieces) {
          const fetch = fetchOf(byDigest.get(piece.digest)!);
          // A blob brought by others (the endgame) before the stream got to it leaves the feeder too far
          // behind to wait for: the stripe's other pieces then come from holders.
          const source = sequence && (await Promise.race([sequence.next(piece), fetch.verified.then(() => undefined, () => undefined)]));
          if (!source) {
            sequence?.close();
            fetch.lanes.get(s)!(undefined);
            continue;
          }
          // The next piece is asked of the stream once this one is read, or once the blob is here by other means.
          let read!: () => void;
          const done = new Promise<void>((resolve) => (read = resolve));
          fetch.lanes.get(s)!({ ...source, bytes: untilDone(source.bytes, read) });
          await Promise.race([done, fetch.verified.catch(() => undefined)]);
        }
      } finally {
        sequence?.close();
      }
    }));
    await Promise.all([...fetches.values()].map((f) => f.verified));
  }

  /** The pieces on one stream from their feeder, or undefined (the mirror then takes them from holders). */
  async #sequence(feeder: string, pieces: Piece[], level?: SequenceLevel): Promise<SourceSequence | undefined> {
    if (pieces.length === 0) return undefined;
    try {
      return await this.deps.mirror.openSequence(feeder, pieces, level);
    } catch (err) {
      this.deps.log.warn({ peer: feeder, pieces: pieces.length, err: (err as Error).message }, 'a feeder sends no sequence; its stripe comes from holders');
      return undefined;
    }
  }
}

/** The bytes, calling `done` once they are read to the end or no longer read. */
async function* untilDone(bytes: AsyncIterable<Uint8Array>, done: () => void): AsyncGenerator<Uint8Array> {
  try {
    yield* bytes;
  } finally {
    done();
  }
}

/** Waits for a fetch's outcome: a blob that no holder sent fails the replication. */
async function arrived(outcome: Promise<boolean>, digest: string): Promise<void> {
  if (!(await outcome)) throw new Error(`no holder sent ${digest}`);
}
