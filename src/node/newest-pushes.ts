// The newest push this node knows of each image name: its own pushes and those gossiped by others, whether
// or not it copies them. A local push gets a clock newer than any known of its name, and an event older
// than the newest known is ignored. Held names come back after a restart from the stamps in the image
// records' labels; names only heard of are kept in memory, bounded.
import type { Store } from '../store/store.js';
import { comparePushes, nextClock, pushOf, type TagPush } from '../oci/tag-push.js';

export interface KnownPush extends TagPush {
  /** Root manifest or index digest of the push. */
  digest: string;
}

/** Names remembered at most; the least recently pushed are forgotten first. */
const MAX_NAMES = 10_000;

export class NewestPushes {
  readonly #byName = new Map<string, KnownPush>();

  constructor(readonly self: string, private readonly maxNames = MAX_NAMES) {}

  /** Seeds from the stamps of the store's image records. */
  async load(store: Store): Promise<void> {
    for (const record of await store.images.list()) {
      const push = pushOf(record.labels);
      if (push) this.observe(record.name, { ...push, digest: record.target.digest });
    }
  }

  get(name: string): KnownPush | undefined {
    return this.#byName.get(name);
  }

  /** Remembers `push` if it is newer than every push of `name` known; says whether it was. */
  observe(name: string, push: KnownPush): boolean {
    if (comparePushes(push, this.#byName.get(name)) <= 0) return false;
    this.#byName.delete(name); // re-inserted last: the map's order is the order of the pushes' arrival
    this.#byName.set(name, { clock: push.clock, node: push.node, digest: push.digest });
    if (this.#byName.size > this.maxNames) this.#byName.delete(this.#byName.keys().next().value!);
    return true;
  }

  /** Stamps a push of `name` to this node: newer than any push of it known, even when this host's clock is behind. */
  stamp(name: string, digest: string): KnownPush {
    const push = { clock: nextClock(this.#byName.get(name)), node: this.self, digest };
    this.observe(name, push);
    return push;
  }

  /** Whether `push` is the newest push of `name` known. */
  isNewest(name: string, push: TagPush): boolean {
    return comparePushes(push, this.#byName.get(name)) >= 0;
  }
}
