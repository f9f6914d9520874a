// Decides what this node does with a push gossiped by another: ignore it when a newer push of the name is
// known (the newest push names an image everywhere, see src/oci/tag-push.ts), copy it when the push's
// replication policy (or this node's own) selects this node or when this node holds the name already (it
// would serve a stale image otherwise: that includes a node whose own push of the name lost), else only
// remember it.
import type { Logger } from 'pino';
import type { Membership } from '../dht/membership.js';
import type { MeshEvent } from '../dht/router.js';
import type { Store } from '../store/store.js';
import type { NewestPushes } from './newest-pushes.js';
import { parseReplicationPolicy, type NodeIdentity, type ReplicationPolicy } from './replication-policy.js';
import type { Replicator } from './replicator.js';
import { orderOfTags, takerOrder } from './replication-plan.js';

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
  replicator: Pick<Replicator, 'replicate' | 'copying'>;
  /** This node's id, and the members it is connected to with what they told of themselves. */
  membership: Pick<Membership, 'self' | 'peers'>;
  policy: ReplicationPolicy;
  /** This node as replication policies see it. */
  self: NodeIdentity;
  log: Logger;
}

export class PushFollower {
  constructor(private readonly deps: PushFollowerDeps) {}

  /** Acts on a push gossiped by another node. */
  onEvent(event: MeshEvent): void {
    this.#follow(event).catch((err: Error) =>
      this.deps.log.error({ image: event.image, digest: event.digest, err: err.message }, 'replication failed'));
  }

  async #follow(event: MeshEvent): Promise<void> {
    const { log, self, store, pushes, replicator } = this.deps;
    const { image, digest } = event;
    const push = { clock: event.clock, node: event.node };
    if (!pushes.observe(image, { ...push, digest })) {
      log.info({ image, digest, clock: push.clock, node: push.node, newest: pushes.get(image) }, 'ignoring a push older than the newest known of its name');
      return;
    }
    const override = event.replicate === undefined ? undefined : readablePolicy(event.replicate);
    if (event.replicate !== undefined && !override) {
      log.warn({ image, replicate: event.replicate }, 'push carries an unreadable replication policy; each node uses its own');
    }
    const policy = override ?? this.deps.policy;
    if (!policy.accepts(image, self)) {
      if (!(await store.images.get(image))) {
        log.info({ image, policy: policy.text }, 'not replicating: the policy does not select this node');
        return;
      }
      log.info({ image, policy: policy.text }, 'the policy does not select this node, but it holds the name: following its newest push');
    }
    if (replicator.copying(image) === digest) return;
    // The plan of the node pushed to when it sent one, so that takers whose views differ plan alike; else this node's own.
    const order = event.takers
      ? orderOfTags(event.takers, this.#members().map((m) => m.id))
      : takerOrder(digest, [...this.takersOf(image, event.node, event.replicate), this.deps.membership.self]);
    log.info({ image, digest, takers: order.length, plannedBy: event.takers ? 'the node pushed to' : 'this node' }, 'copying a push');
    await replicator.replicate(image, digest, event.node, { push, order, inline: event.inline });
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
