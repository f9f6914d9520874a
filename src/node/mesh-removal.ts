// rm --mesh as the other members carry it out: each removes the image unless a container uses it, and
// says so when its own replication policy selects the image (its next push will bring it back). A removal
// that fails here (containerd not answering) is tried again a few times, unless the name was pushed since:
// the removal's gossip does not come again, and the image would stay, announced and served.
import type { Logger } from 'pino';
import type { RemoveEvent } from '../dht/router.js';
import type { Evictor } from './evictor.js';
import type { KnownPush, NewestPushes } from './newest-pushes.js';
import type { NodeIdentity, ReplicationPolicy } from '../oci/replication-policy.js';
import { RETRY_AFTER_MS, type RetryTimers } from './retries.js';

export interface MeshRemovalDeps {
  evictor: Pick<Evictor, 'remove'>;
  policy: ReplicationPolicy;
  self: NodeIdentity;
  /** The newest push of each name known here: one newer than a removal is not undone by the removal's retry. */
  pushes: Pick<NewestPushes, 'get'>;
  /** A member's name, for logs. */
  nameOf(id: string): string;
  log: Logger;
  /** Where the retries wait: stopped with the daemon. */
  retries: RetryTimers;
  /** Waits before the retries of a failed removal; default RETRY_AFTER_MS. */
  retryAfterMs?: number[];
}

export function meshRemoval(deps: MeshRemovalDeps): (event: RemoveEvent) => void {
  const { evictor, policy, self, pushes, nameOf, log, retries, retryAfterMs = RETRY_AFTER_MS } = deps;
  const attempt = async (image: string, asker: string, pushed: KnownPush | undefined, tries: number): Promise<void> => {
    if (tries > 0 && pushes.get(image) !== pushed) return log.info({ image, from: asker }, 'rm --mesh not tried again: the name was pushed since');
    const again = (wait: number | undefined) => wait !== undefined && retries.after(wait, () => void attempt(image, asker, pushed, tries + 1));
    try {
      const report = await evictor.remove(image, `rm --mesh from ${asker}`);
      if (report.untilCopied) {
        const wait = retryAfterMs[tries];
        if (wait === undefined) return log.warn({ image, from: asker, kept: report.kept }, 'rm --mesh: given up; the image stays here (run rm again)');
        log.info({ image, from: asker, kept: report.kept, retryInSeconds: wait / 1000 }, 'rm --mesh: not yet');
        return void again(wait);
      }
      if (report.kept) log.info({ image, from: asker, kept: report.kept }, 'rm --mesh: kept');
      if (policy.text !== 'all' && policy.accepts(image, self)) {
        log.warn({ image, from: asker, policy: policy.text }, 'rm --mesh: this node\'s replication policy selects the image; its next push copies it here again');
      }
    } catch (err) {
      const wait = retryAfterMs[tries];
      log.error({ image, from: asker, err: (err as Error).message, ...(wait !== undefined && { retryInSeconds: wait / 1000 }) }, 'rm --mesh failed on this node');
      again(wait);
    }
  };
  return ({ image, node }) => void attempt(image, nameOf(node), pushes.get(image), 0);
}
