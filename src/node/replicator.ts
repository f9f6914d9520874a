// Copies an image pushed to another node (push-follower.ts decides which): manifests and configs (inlined
// in the push's gossip, else from the node pushed to), then every layer through the mirror, then the image
// record under the same name, if the push is still the newest of that name (tag-records.ts). From then on
// this node holds the image and announces it like anything else in its store.
//
// Fan-out without a herd: every node knows the others' names, labels and policies, so every node
// computes the same set of takers and the same order of them (by a hash of image and peer id, different
// for every image). Each taker asks the one before it for all of the image's layers on one stream (a
// blob sequence, in manifest order), which that node serves from its partial copies as they arrive;
// the first takes them from the node pushed to. So the image travels a pipeline through the fleet:
// every link carries it once, as one stream, and the node pushed to sends it once. With an order per
// layer, links carried several streams at different rates, and every byte a stream holds in socket
// buffers is delay at each hop, multiplied by the streams sharing the link (fan-out of 8 hosts at
// 50 Mbit/s: 1.36 × S/B then, 1.25 with one order per image); a request per layer then cost a round
// trip through full queues each. When the one before is gone, the mirror takes the rest from any
// holder. Layers under PIPELINE_MIN_BYTES come straight from the node pushed to: a pipeline would only
// add hops.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { putBlob, type Store } from '../store/store.js';
import { digestOf, type Descriptor } from '../oci/digest.js';
import type { Membership } from '../dht/membership.js';
import type { SourceSequence } from '../mirror/blob-sequence.js';
import type { FetchOptions, Fetching } from '../mirror/mirror.js';
import { PIPELINE_MIN_BYTES } from '../mirror/peer-protocol.js';
import { children, isIndexMediaType, MANIFEST_MEDIA_TYPES, parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { readManifest } from '../oci/references.js';
import type { ImageFetch } from '../api/admin-types.js';
import type { TagPush } from '../oci/tag-push.js';
import type { TagRecords } from './tag-records.js';
import { replicatedBytes, replications, replicationSeconds, replicationsInProgress } from './replication-metrics.js';

/** The part of the mirror that replication takes its bytes through. */
export interface ReplicationSource {
  fetch(digest: string, options: FetchOptions): Fetching;
  /** `blobs` from `peer` on one stream, in this order. */
  openSequence(peer: string, blobs: Descriptor[]): Promise<SourceSequence>;
  /** Blobs arriving now and the bytes of each that are here. */
  arriving(): Map<string, number>;
}

export interface ReplicateOptions {
  /** The push's stamp: the image record is written only while it is the newest push of the name known. */
  push: TagPush;
  takers?: string[];
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

/** Small blobs fetched at once from the node pushed to. */
const PARALLEL_SMALL = 6;
/** Pipelined layers in flight at once when the node before cannot send them in one sequence. */
const PARALLEL_PIPELINED = 2;

interface Active {
  digest: string;
  blobs: Descriptor[];
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
   * whole; `takers` are the nodes copying it too (this one included), which decide where each blob is taken
   * from; `inline` has small blobs that came with the push's gossip (base64 by digest), kept when they verify.
   */
  async replicate(image: string, digest: string, pushedTo: string, options: ReplicateOptions): Promise<void> {
    // Claimed before the first await: of two copies of one name, the one asked for last is the one that may
    // name the image, whatever order the store answers them in.
    const active: Active = { digest, blobs: [] };
    this.#active.set(image, active);
    try {
      const current = await this.deps.store.images.get(image);
      // The same image pushed again: only its stamp changes.
      if (current?.target.digest === digest) await this.deps.records.write(image, current.target, options.push);
      else await this.#copy(image, pushedTo, options, active);
    } finally {
      if (this.#active.get(image) === active) this.#active.delete(image);
    }
  }

  async #copy(image: string, pushedTo: string, { push, takers = [], inline = {} }: ReplicateOptions, active: Active): Promise<void> {
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
      active.blobs = manifests.flatMap((m) => children(m.manifest)).filter((d) => !MANIFEST_MEDIA_TYPES.includes(d.mediaType));
      // Once each (platforms of an index share layers), in the manifests' order: the same on every taker.
      const blobs = [...new Map(active.blobs.map((b) => [b.digest, b])).values()];
      for (const blob of blobs) {
        const bytes = given.get(blob.digest);
        if (bytes) keep(blob.digest, bytes);
      }
      const wanted = blobs.filter((b) => !given.has(b.digest));
      const feeder = this.#feeder(digest, pushedTo, takers);
      await Promise.all([
        inParallel(wanted.filter((b) => b.size < PIPELINE_MIN_BYTES), PARALLEL_SMALL, (blob) =>
          arrived(this.deps.mirror.fetch(blob.digest, { from: [pushedTo], patient: true }).stored, blob.digest)),
        this.#pipeline(wanted.filter((b) => b.size >= PIPELINE_MIN_BYTES), feeder, pushedTo, pending),
      ]);
      await Promise.all(storing);
      // A later push of the same name may have started meanwhile, or be known by now: the newest one names the image.
      const target = { mediaType: root.manifest.mediaType, digest, size: root.body.length };
      if (this.#active.get(image) !== active || !(await this.deps.records.write(image, target, push))) {
        outcome = 'superseded';
        return;
      }
      const bytes = active.blobs.reduce((n, b) => n + b.size, 0);
      const seconds = (performance.now() - started) / 1000;
      replicatedBytes.inc(bytes);
      replicationSeconds.observe(seconds);
      outcome = 'replicated';
      this.deps.log.info({ image, digest, blobs: active.blobs.length, bytes, seconds }, 'replicated');
    } finally {
      replicationsInProgress.dec();
      replications.inc({ outcome });
      this.deps.ended?.(image, digest, outcome);
    }
  }

  /** Names and digests of what is being copied here now: eviction leaves them alone. */
  inFlight(): Set<string> {
    return new Set([...this.#active].flatMap(([image, { digest, blobs }]) => [image, digest, ...blobs.map((b) => b.digest)]));
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

  /** The node this one takes the layers of image `digest` from: the taker before it, or the node pushed to. */
  #feeder(digest: string, pushedTo: string, takers: string[]): string {
    const rank = (id: string) => createHash('sha256').update(`${digest}\n${id}`).digest('hex');
    const order = takers.map((id) => ({ id, rank: rank(id) })).sort((a, b) => (a.rank < b.rank ? -1 : 1));
    const at = order.findIndex((t) => t.id === this.deps.membership.self);
    return at > 0 ? order[at - 1].id : pushedTo;
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

  /**
   * Takes the layers from the node before, all on one stream when it can, each as soon as it is
   * verified; their stored copies go to `pending`.
   */
  async #pipeline(layers: Descriptor[], feeder: string, pushedTo: string, pending: (storing: Promise<void>) => void): Promise<void> {
    const sequence = await this.#sequence(feeder, layers);
    // A node before that sent nothing (it does not take the image after all, or is gone) is not waited for again.
    const from = sequence || feeder === pushedTo ? [feeder, pushedTo] : [pushedTo, feeder];
    try {
      await inParallel(layers, sequence ? 1 : PARALLEL_PIPELINED, async (blob) => {
        const { verified, stored } = this.deps.mirror.fetch(blob.digest, { from, patient: true, source: await sequence?.next(blob) });
        pending(arrived(stored, blob.digest));
        await arrived(verified, blob.digest);
      });
    } finally {
      sequence?.close();
    }
  }

  /** The layers on one stream from the node before, or undefined (they are then fetched one by one). */
  async #sequence(feeder: string, layers: Descriptor[]): Promise<SourceSequence | undefined> {
    if (layers.length === 0) return undefined;
    try {
      return await this.deps.mirror.openSequence(feeder, layers);
    } catch (err) {
      this.deps.log.warn({ peer: feeder, layers: layers.length, err: (err as Error).message }, 'the node before sends no sequence; fetching layer by layer');
      return undefined;
    }
  }
}

/** Waits for a fetch's outcome: a blob that no holder sent fails the replication. */
async function arrived(outcome: Promise<boolean>, digest: string): Promise<void> {
  if (!(await outcome)) throw new Error(`no holder sent ${digest}`);
}

/** Runs `work` on every item, at most `limit` at a time; fails with the first failure. */
async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
