// Writes the image records of pushes copied to this node, one name at a time, so that a name ends on the
// newest push of it known whatever order the copies finish in.
import type { Logger } from 'pino';
import type { Descriptor } from '../oci/digest.js';
import { readManifest } from '../oci/references.js';
import { comparePushes, pushLabels, pushOf, type TagPush } from '../oci/tag-push.js';
import { ORIGIN_LABEL, type Store } from '../store/store.js';
import { KeyedQueue } from '../util/keyed-queue.js';
import type { NewestPushes } from './newest-pushes.js';

export class TagRecords {
  /** Writes of one name run one after the other. */
  readonly #writing = new KeyedQueue();

  constructor(private readonly store: Store, private readonly pushes: NewestPushes, private readonly log: Logger) {}

  /** Names `target` `image`, stamped with `push`, if that is still the newest push of it known; true when it did. */
  write(image: string, target: Descriptor, push: TagPush): Promise<boolean> {
    return this.#writing.run(image, () => this.#write(image, target, push));
  }

  async #write(image: string, target: Descriptor, push: TagPush): Promise<boolean> {
    // The record's own stamp counts too: the newest pushes known keep 10,000 names, and forget the oldest.
    const stamped = pushOf((await this.store.images.get(image))?.labels ?? {});
    if (!this.pushes.isNewest(image, push) || comparePushes(push, stamped) < 0) {
      this.log.info({ image, digest: target.digest, clock: push.clock, node: push.node }, 'not naming the image: a newer push of it is known');
      return false;
    }
    await this.store.images.put({ name: image, target, labels: { ...pushLabels(push), [ORIGIN_LABEL]: 'replicated' } });
    // A push to this node stored while this record was written (known from its store on) may have finished
    // first: its record is written again, so that the newest push has the last word here too.
    const newest = this.pushes.get(image);
    if (newest && newest.node === this.pushes.self && newest.digest !== target.digest) {
      const found = await readManifest(this.store, newest.digest);
      if (found) {
        const own = { mediaType: found.manifest.mediaType, digest: newest.digest, size: found.body.length };
        await this.store.images.put({ name: image, target: own, labels: { ...pushLabels(newest), [ORIGIN_LABEL]: 'pushed' } });
        this.log.info({ image, digest: newest.digest }, 'a push to this node overtook a copy: named the image after the push again');
      }
    }
    return true;
  }
}
