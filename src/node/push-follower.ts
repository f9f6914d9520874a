// Decides what this node does with a push gossiped by another: ignore it when a newer push of the name is
// known (the newest push names an image everywhere, see src/oci/tag-push.ts), copy it when the push's
// replication policy (or this node's own) selects this node or when this node holds the name already (it
// would serve a stale image otherwise: that includes a node whose own push of the name lost), else only
// remember it. A copy that fails is tried again, ever less often, while its push is the newest of its name:
// the push is known here from then on, so neither its gossip nor a catch-up would bring it again. A copy that a
// restart cut off, or whose next try it dropped, is made after it (resumeUnfinished: NewestPushes keeps which).
import type { Logger } from 'pino';
import type { Membership } from '../dht/membership.js';
import type { MeshEvent } from '../dht/router.js';
import type { Store } from '../store/store.js';
import type { NewestPushes } from './newest-pushes.js';
import { parseReplicationPolicy, type NodeIdentity, type ReplicationPolicy } from '../oci/replication-policy.js';
import type { Replicator } from './replicator.js';
import { orderOfTags, takerOrder } from './replication-plan.js';
import { RETRY_AFTER_MS } from './retries.js';
import { comparePushes, type TagPush } from '../oci/tag-push.js';

/** Names removed from the mesh remembered (their removed push): past it, the oldest is forgotten. */
const MAX_REMOVED = 10_000;

/** A member of the mesh as replication sees it (this node included). */
export interface Member extends NodeIdentity {
  id: string;
  /** Its replication policy as it announced it; absent means `all`. */
  replicate?: string;
}

/** The members known here that copy a push of `image` to `pushedTo`, with the push's policy `replicate` if it has one. */
export type TakersOf = (image: string, pushedTo: string, replicate?: string) => string[];

export interface PushFollowerDeps {
  store: Store;
  pushes: NewestPushes;
  replicator: Pick<Replicator, 'replicate' | 'copying' | 'cancel'>;
  /** This node's id, and the members it is connected to with what they told of themselves. */
  membership: Pick<Membership, 'self' | 'peers'>;
  policy: ReplicationPolicy;
  /** This node as replication policies see it. */
  self: NodeIdentity;
  log: Logger;
  /** Waits before the retries of a failed copy, the last one repeated; default RETRY_AFTER_MS. */
  retryAfterMs?: number[];
}

export class PushFollower {
  /** By image name: a copy's next try, which a newer push of the name makes moot. */
  readonly #retries = new Map<string, NodeJS.Timeout>();
  /** By image name: the newest push known when the image was removed from the mesh; it, and older ones, are not copied again. */
  readonly #removed = new Map<string, TagPush>();
  #stopped = false;

  constructor(private readonly deps: PushFollowerDeps) {}

  /** Acts on a push gossiped by another node. */
  onEvent(event: MeshEvent): void {
    const { log, pushes } = this.deps;
    const { image, digest, clock, node } = event;
    if (this.#stopped) return;
    if (!pushes.observe(image, { clock, node, digest })) {
      log.info({ image, digest, clock, node, newest: pushes.get(image) }, 'ignoring a push older than the newest known of its name');
      return;
    }
    void this.#follow(event, 0);
  }

  /** The copies a restart cut off (or whose next try it dropped): each made if still to be. */
  resumeUnfinished(): void {
    for (const { name, push } of this.deps.pushes.unfinishedCopies()) {
      const { clock, node, digest, copy } = push;
      void this.#follow({ type: 'image-pushed', image: name, digest, node, clock, ...(copy?.replicate !== undefined && { replicate: copy.replicate }) }, 0, true);
    }
  }

  /** The image was removed from the mesh (rm --mesh): its copy under way, or its next try, would bring it back. */
  forget(image: string): void {
    clearTimeout(this.#retries.get(image));
    this.#retries.delete(image);
    const newest = this.deps.pushes.get(image);
    if (newest) {
      this.deps.pushes.copied(image, newest);
      this.#removed.delete(image);
      this.#removed.set(image, newest);
      if (this.#removed.size > MAX_REMOVED) this.#removed.delete(this.#removed.keys().next().value!);
    }
    this.deps.replicator.cancel(image);
  }

  /** Stops the retries, and following pushes: a copy failing from now on is not tried again. */
  stop(): void {
    this.#stopped = true;
    this.#retries.forEach(clearTimeout);
    this.#retries.clear();
  }

  /** Never rejects: a failure is logged and tried again. `resumed`: a copy an earlier run did not finish. */
  async #follow(event: MeshEvent, attempt: number, resumed = false): Promise<void> {
    const { image, digest } = event;
    try {
      if ((attempt === 0 && !resumed) || (await this.#stillWanted(event))) await this.#copy(event, resumed);
      // Here already, or moot: no copy of it left to make; a copy of it under way clears the mark as it ends.
      else if (this.deps.replicator.copying(image) !== digest) this.deps.pushes.copied(image, event);
    } catch (err) {
      if (this.#stopped) return;
      if (this.#moot(event)) {
        this.deps.log.info({ image, digest, err: (err as Error).message }, 'replication of a push no longer the newest of its name, or removed, failed; not tried again');
        return;
      }
      const waits = this.deps.retryAfterMs ?? RETRY_AFTER_MS;
      const wait = waits[Math.min(attempt, waits.length - 1)];
      this.deps.log.error({ image, digest, err: (err as Error).message, attempt: attempt + 1, retryInSeconds: wait / 1000 }, 'replication failed; trying again later');
      clearTimeout(this.#retries.get(image));
      // The retry asks the node pushed to for the small blobs: the gossip's copies of them (up to 48 KiB) are not
      // kept for as long as it may wait, for every name whose copy fails.
      const { inline: _inline, ...retry } = event;
      this.#retries.set(image, setTimeout(() => this.#retries.delete(image) && void this.#follow(retry, attempt + 1), wait).unref());
    }
  }

  /** A copy of the push is no longer to be made: a newer push of its name is known, or the image was removed since (rm --mesh). */
  #moot({ image, clock, node }: Pick<MeshEvent, 'image' | 'clock' | 'node'>): boolean {
    const removed = this.#removed.get(image);
    return !this.deps.pushes.isNewest(image, { clock, node }) || (removed !== undefined && comparePushes({ clock, node }, removed) <= 0);
  }

  /** A failed copy is still to be made: its push is the newest of the name, no copy of it is under way, and it is not here. */
  async #stillWanted({ image, digest, clock, node }: MeshEvent): Promise<boolean> {
    const { replicator, store } = this.deps;
    if (this.#moot({ image, clock, node }) || replicator.copying(image) !== undefined) return false;
    return (await store.images.get(image))?.target.digest !== digest;
  }

  async #copy(event: MeshEvent, resumed: boolean): Promise<void> {
    const { log, self, store, replicator, pushes } = this.deps;
    const { image, digest } = event;
    const push = { clock: event.clock, node: event.node };
    const override = event.replicate === undefined ? undefined : readablePolicy(event.replicate);
    if (event.replicate !== undefined && !override) {
      log.warn({ image, replicate: event.replicate }, 'push carries an unreadable replication policy; each node uses its own');
    }
    const policy = override ?? this.deps.policy;
    if (!policy.accepts(image, self)) {
      if (!(await store.images.get(image))) {
        log.info({ image, policy: policy.text }, 'not replicating: the policy does not select this node');
        pushes.copied(image, push); // a copy resumed after this node's policy changed: none to make any more
        return;
      }
      log.info({ image, policy: policy.text }, 'the policy does not select this node, but it holds the name: following its newest push');
    }
    // The plan of the node pushed to when it sent one, so that takers whose views differ plan alike; else this node's own.
    const order = event.takers
      ? orderOfTags(event.takers, this.#members().map((m) => m.id))
      : takerOrder(digest, [...this.takersOf(image, event.node, event.replicate), this.deps.membership.self]);
    log.info({ image, digest, takers: order.length, plannedBy: event.takers ? 'the node pushed to' : 'this node', ...(resumed && { resumed }) }, 'copying a push');
    pushes.willCopy(image, push, event.replicate);
    await replicator.replicate(image, digest, event.node, { push, order, inline: event.inline });
    pushes.copied(image, push);
  }

  /** The members known here that copy a push of `image` to `pushedTo`: each that its policy (the push's, else its own) selects. */
  takersOf: TakersOf = (image, pushedTo, replicate) => {
    const override = replicate === undefined ? undefined : readablePolicy(replicate);
    return this.#members()
      .filter((m) => m.id !== pushedTo && (override ?? readablePolicy(m.replicate ?? 'all'))?.accepts(image, m))
      .map((m) => m.id);
  };

  /** Every member known now, this node included. */
  #members(): Member[] {
    const { membership, self, policy } = this.deps;
    return [
      { id: membership.self, ...self, replicate: policy.text },
      ...membership.peers().flatMap((p) => (p.info ? [{ id: p.id, ...p.info }] : [])),
    ];
  }
}

function readablePolicy(text: string): ReplicationPolicy | undefined {
  try {
    return parseReplicationPolicy(text);
  } catch {
    return undefined;
  }
}
