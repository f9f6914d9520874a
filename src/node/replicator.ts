// Copies the images pushed to other nodes when this node's replication policy (or the push's own)
// accepts them: manifests first, then every blob through the mirror, then the image record under the
// same name. From then on this node holds the image and announces it like anything else in its store.
//
// Fan-out without a herd: every node knows the others' names, labels and policies, so every node
// computes the same set of takers, and for each blob the same order of them (by a hash of blob and
// peer id, different for every blob). Each taker streams the blob from the one before it, which serves
// it from its partial copy as it arrives; the first takes it from the node pushed to. So every blob
// travels a pipeline through the fleet, every link carries each blob about once, and the node pushed
// to sends each blob once. When the one before is gone, the mirror falls back to any holder. Small
// blobs (configs, manifests) come straight from the node pushed to: a pipeline would only add hops.
import { createHash } from 'node:crypto';
import type { Logger } from 'pino';
import { digestOf, putBlob, type Descriptor, type Store } from '../containerd/store.js';
import type { MeshEvent } from '../dht/router.js';
import type { FetchOptions } from '../mirror/mirror.js';
import { PIPELINE_MIN_BYTES } from '../mirror/peer-client.js';
import { children, isIndexMediaType, MANIFEST_MEDIA_TYPES, parseManifest, type ParsedManifest } from '../oci/manifest.js';
import { readManifest } from '../registry/references.js';
import type { InventoryFetch } from './inventory.js';
import { parseReplicationPolicy, type NodeIdentity, type ReplicationPolicy } from './replication-policy.js';

/** A member of the mesh as the replicator sees it (this node included). */
export interface Member extends NodeIdentity {
  id: string;
  /** Its replication policy as it announced it; absent means `all`. */
  replicate?: string;
}

export interface ReplicatorDeps {
  store: Store;
  selfId: string;
  /** Every member known now, this node included. */
  members(): Member[];
  fetch(digest: string, options: FetchOptions): Promise<boolean>;
  /** Blobs arriving now and the bytes of each that are here. */
  arriving(): Map<string, number>;
  policy: ReplicationPolicy;
  self: NodeIdentity;
  log: Logger;
}

/** Blobs fetched at once per image: enough to keep a link busy, few enough not to split it into slivers. */
const PARALLEL_BLOBS = 6;

interface Active {
  digest: string;
  blobs: Descriptor[];
}

export class Replicator {
  readonly #active = new Map<string, Active>();

  constructor(private readonly deps: ReplicatorDeps) {}

  /** Acts on a push gossiped by another node. */
  onEvent(event: MeshEvent): void {
    const { log, self, selfId } = this.deps;
    const override = event.replicate === undefined ? undefined : readablePolicy(event.replicate);
    if (event.replicate !== undefined && !override) {
      log.warn({ image: event.image, replicate: event.replicate }, 'push carries an unreadable replication policy; each node uses its own');
    }
    const policy = override ?? this.deps.policy;
    if (!policy.accepts(event.image, self)) {
      log.info({ image: event.image, policy: policy.text }, 'not replicating: the policy does not select this node');
      return;
    }
    if (this.#active.get(event.image)?.digest === event.digest) return;
    const takers = this.deps.members()
      .filter((m) => m.id !== event.node && (m.id === selfId || (override ?? readablePolicy(m.replicate ?? 'all'))?.accepts(event.image, m)))
      .map((m) => m.id);
    this.replicate(event.image, event.digest, event.node, { takers, inline: event.inline }).catch((err: Error) =>
      log.error({ image: event.image, digest: event.digest, err: err.message }, 'replication failed'));
  }

  /**
   * Copies `image` (root manifest `digest`) from the mesh. `origin` holds it whole; `takers` are the
   * nodes copying it too (this one included), which decide where each blob is taken from; `inline`
   * has small blobs that came with the push's gossip (base64 by digest), kept when they verify.
   */
  async replicate(image: string, digest: string, origin: string, { takers = [], inline = {} }: { takers?: string[]; inline?: Record<string, string> } = {}): Promise<void> {
    const { store, log } = this.deps;
    if ((await store.images.get(image))?.target.digest === digest) return;
    const active: Active = { digest, blobs: [] };
    this.#active.set(image, active);
    const started = performance.now();
    const given = this.#verified(inline);
    // Inlined blobs go into the store while the layers arrive; the image record waits for both.
    const storing: Promise<void>[] = [];
    const keep = (blob: string, bytes: Buffer) => void storing.push(this.#put(blob, bytes));
    try {
      const root = await this.#manifest({ digest }, origin, given, keep);
      const manifests = [root];
      if (isIndexMediaType(root.manifest.mediaType)) {
        for (const child of root.manifest.manifests) manifests.push(await this.#manifest(child, origin, given, keep));
      }
      active.blobs = manifests.flatMap((m) => children(m.manifest)).filter((d) => !MANIFEST_MEDIA_TYPES.includes(d.mediaType));
      await inParallel(active.blobs, PARALLEL_BLOBS, async (blob) => {
        const bytes = given.get(blob.digest);
        if (bytes) return keep(blob.digest, bytes);
        await this.#fetch(blob.digest, blob.size >= PIPELINE_MIN_BYTES ? [this.#upstream(blob.digest, origin, takers), origin] : [origin]);
      });
      await Promise.all(storing);
      // A later push of the same name may have started meanwhile: the newest one names the image.
      if (this.#active.get(image) !== active) return;
      const target = { mediaType: root.manifest.mediaType, digest, size: root.body.length };
      await store.images.put({ name: image, target, labels: {} });
      const bytes = active.blobs.reduce((n, b) => n + b.size, 0);
      log.info({ image, digest, blobs: active.blobs.length, bytes, seconds: (performance.now() - started) / 1000 }, 'replicated');
    } finally {
      if (this.#active.get(image) === active) this.#active.delete(image);
    }
  }

  /** Images being copied here now, with the bytes of their blobs that are here. */
  async progress(): Promise<InventoryFetch[]> {
    const arriving = this.deps.arriving();
    return Promise.all([...this.#active].map(async ([image, { digest, blobs }]) => {
      let bytes = 0;
      for (const blob of blobs) bytes += arriving.get(blob.digest) ?? ((await this.deps.store.stat(blob.digest)) ? blob.size : 0);
      return { image, digest, bytes, total: blobs.reduce((n, b) => n + b.size, 0) };
    }));
  }

  /** The node this one takes a blob from: the taker before it in the blob's order, or the origin. */
  #upstream(digest: string, origin: string, takers: string[]): string {
    const rank = (id: string) => createHash('sha256').update(`${digest}\n${id}`).digest('hex');
    const order = takers.map((id) => ({ id, rank: rank(id) })).sort((a, b) => (a.rank < b.rank ? -1 : 1));
    const at = order.findIndex((t) => t.id === this.deps.selfId);
    return at > 0 ? order[at - 1].id : origin;
  }

  /** A manifest from the push's gossip when it came with it, else from the origin through the mirror. */
  async #manifest(desc: { digest: string; mediaType?: string }, origin: string, given: Map<string, Buffer>, keep: (digest: string, bytes: Buffer) => void): Promise<{ body: Buffer; manifest: ParsedManifest }> {
    const body = given.get(desc.digest);
    if (body) {
      const manifest = parseManifest(body, desc.mediaType);
      keep(desc.digest, body);
      return { body, manifest };
    }
    await this.#fetch(desc.digest, [origin]);
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

  async #fetch(digest: string, from: string[]): Promise<void> {
    if (!(await this.deps.fetch(digest, { from, patient: true }))) throw new Error(`no holder sent ${digest}`);
  }
}

function readablePolicy(text: string): ReplicationPolicy | undefined {
  try {
    return parseReplicationPolicy(text);
  } catch {
    return undefined;
  }
}

/** Runs `work` on every item, at most `limit` at a time; fails with the first failure. */
async function inParallel<T>(items: T[], limit: number, work: (item: T) => Promise<void>): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < items.length) await work(items[next++]);
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, worker));
}
