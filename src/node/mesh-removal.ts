// rm --mesh as the other members carry it out: each removes the image unless a container uses it, and
// says so when its own replication policy selects the image (its next push will bring it back).
import type { Logger } from 'pino';
import type { RemoveEvent } from '../dht/router.js';
import type { Evictor } from './evictor.js';
import type { NodeIdentity, ReplicationPolicy } from './replication-policy.js';

export interface MeshRemovalDeps {
  evictor: Pick<Evictor, 'remove'>;
  policy: ReplicationPolicy;
  self: NodeIdentity;
  /** A member's name, for logs. */
  nameOf(id: string): string;
  log: Logger;
}

export function meshRemoval({ evictor, policy, self, nameOf, log }: MeshRemovalDeps): (event: RemoveEvent) => Promise<void> {
  return async ({ image, node }) => {
    const asker = nameOf(node);
    const report = await evictor.remove(image, `rm --mesh from ${asker}`);
    if (report.kept) log.info({ image, from: asker, kept: report.kept }, 'rm --mesh: kept');
    if (policy.text !== 'all' && policy.accepts(image, self)) {
      log.warn({ image, from: asker, policy: policy.text }, 'rm --mesh: this node\'s replication policy selects the image; its next push copies it here again');
    }
  };
}
