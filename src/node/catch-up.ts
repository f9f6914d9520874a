// Pushes this node missed: gossip reaches only the members connected when it is sent, so a node that was
// not yet started, restarting or cut off never hears of a push made meanwhile. Each member that connects is
// asked for its inventory, and the pushes to that member which it still names its images after are followed
// as if their gossip had come now. Only a push's own node vouches for it, as only it signs the push's gossip:
// its inventory comes over the connection its key secures. What is known here already is left alone.
import type { Logger } from 'pino';
import type { Membership } from '../dht/membership.js';
import type { MeshEvent } from '../dht/router.js';
import { comparePushes } from '../oci/tag-push.js';
import { decodeEvent, encodeEvent } from '../dht/mesh-events.js';
import { isDigest } from '../oci/digest.js';
import type { NewestPushes } from './newest-pushes.js';
import { RETRY_AFTER_MS, type RetryTimers } from './retries.js';

export function catchUpOnJoin(
  membership: Pick<Membership, 'onMember' | 'inventoryOf'>, pushes: Pick<NewestPushes, 'get'>, follow: (event: MeshEvent) => void, log: Logger,
  retries: RetryTimers, askAgainMs = RETRY_AFTER_MS,
): void {
  const catchUp = (id: string, attempt = 0) =>
    void missedPushes(id, attempt).catch((err: Error) => log.warn({ peer: id, err: err.message }, 'could not catch up on pushes'));
  membership.onMember((id) => catchUp(id));

  async function missedPushes(id: string, attempt: number): Promise<void> {
    const inventory = await membership.inventoryOf(id);
    if (inventory === undefined) {
      // Its connection stays: nothing else would ask it again, a few times (inventoryOf logged why).
      if (attempt < askAgainMs.length) retries.after(askAgainMs[attempt], () => catchUp(id, attempt + 1));
      return;
    }
    const missed: MeshEvent[] = inventory.images.flatMap(({ name, digest, push, replicate }) =>
      push?.node === id && comparePushes(push, pushes.get(name)) > 0
        ? [{ type: 'image-pushed' as const, image: name, digest, node: id, clock: push.clock, ...(replicate !== undefined && { replicate }) }]
        : [])
      // Taken as their gossip would be (names and policies its checks refuse go nowhere near the store), of a digest this node copies.
      .filter((event) => isDigest(event.digest) && decodeEvent(encodeEvent(event)).event !== undefined);
    if (missed.length === 0) return;
    log.info({ peer: id, pushes: missed.length, images: missed.slice(0, 10).map((e) => e.image) }, 'following pushes this node missed');
    for (const event of missed) follow(event);
  }
}
