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

/** A member of the mesh as replication sees it (this node included). */
export interface Member extends NodeIdentity {
  id: string;
  /** Its replication policy as it announced it; absent means `all`. */
  replicate?: string;
}

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
    const selfId = this.deps.membership.self;
    const takers = this.#members()
      .filter((m) => m.id !== event.node && (m.id === selfId || (override ?? readablePolicy(m.replicate ?? 'all'))?.accepts(image, m)))
      .map((m) => m.id);
    await replicator.replicate(image, digest, event.node, { push, takers, inline: event.inline });
  }

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
