// The newest push this node knows of each image name: its own pushes and those gossiped by others, whether
// or not it copies them. A local push gets a clock newer than any known of its name, and an event older
// than the newest known is ignored. Held names come back after a restart from the stamps in the image
// records' labels; all names known, bounded, from a file in the data dir (persist()), so that what this
// node removed or evicted is not taken for a push it missed (catch-up.ts). The file also says which pushes
// this node was still to copy (a push's `copy`), so that a copy a restart cut off is made after it.
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import { comparePushes, isTagPush, nextClock, pushOf, type TagPush } from '../oci/tag-push.js';
import { readSaved, writeAtomically } from '../util/atomic-file.js';

export interface KnownPush extends TagPush {
  /** Root manifest or index digest of the push. */
  digest: string;
  /** Set while this node is to copy the push and has not: the push's own replication policy, if it had one. */
  copy?: { replicate?: string };
}

/** Names remembered at most; the least recently pushed are forgotten first. */
const MAX_NAMES = 10_000;
/** A change is written this long after it: a burst of pushes is one write. */
const SAVE_AFTER_MS = 1_000;
/** A write that failed (a full disk) is tried again this much later: not a write and a warning every second. */
const SAVE_RETRY_MS = 30_000;

interface SavedPush extends KnownPush {
  name: string;
}

function isSavedPush(v: unknown): v is SavedPush {
  const s = v as SavedPush;
  const copy = s?.copy;
  return isTagPush(s) && typeof s.name === 'string' && typeof s.digest === 'string'
    && (copy === undefined || (typeof copy === 'object' && copy !== null && ['string', 'undefined'].includes(typeof copy.replicate)));
}

export class NewestPushes {
  readonly #byName = new Map<string, KnownPush>();
  #persisted?: { file: string; log: Logger; timer?: NodeJS.Timeout; dirty: boolean; failing?: boolean };

  constructor(readonly self: string, private readonly maxNames = MAX_NAMES) {}

  /** Reads what `file` kept (absent: nothing yet), and writes every change there from now on. */
  async persist(file: string, log: Logger): Promise<void> {
    const saved = await readSaved(file, log, 'known pushes');
    for (const push of Array.isArray(saved) ? saved : []) {
      if (isSavedPush(push) && this.observe(push.name, push) && push.copy) this.willCopy(push.name, push, push.copy.replicate);
    }
    this.#persisted = { file, log, dirty: false };
  }

  /** Writes a change not written yet; one that could not be (a full disk) is tried again later, and at the next save. */
  async save(): Promise<void> {
    const persisted = this.#persisted;
    if (!persisted?.dirty) return;
    clearTimeout(persisted.timer);
    persisted.timer = undefined;
    persisted.dirty = false;
    // In the order they arrived, as observe() keeps them: the oldest are forgotten first after a restart too.
    const saved: SavedPush[] = [...this.#byName].map(([name, push]) => ({ name, ...push }));
    try {
      await writeAtomically(persisted.file, JSON.stringify(saved));
      persisted.failing = false;
    } catch (err) {
      if (!persisted.failing) persisted.log.warn({ file: persisted.file, err: (err as Error).message }, 'could not write the known pushes; trying again every 30 s');
      persisted.failing = true;
      persisted.dirty = true;
      persisted.timer ??= setTimeout(() => void this.save(), SAVE_RETRY_MS).unref();
    }
  }

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
    this.#changed();
    return true;
  }

  /** Marks `push`, if still the newest of `name`, as one this node is to copy. */
  willCopy(name: string, push: TagPush, replicate: string | undefined): void {
    const known = this.#byName.get(name);
    if (!known || comparePushes(push, known) !== 0) return;
    known.copy = { replicate };
    this.#changed();
  }

  /** This node has copied `push`, or is not to any more. */
  copied(name: string, push: TagPush): void {
    const known = this.#byName.get(name);
    if (!known?.copy || comparePushes(push, known) !== 0) return;
    delete known.copy;
    this.#changed();
  }

  /** The pushes this node is still to copy, as their gossip had them. */
  unfinishedCopies(): { name: string; push: KnownPush }[] {
    return [...this.#byName].filter(([, push]) => push.copy).map(([name, push]) => ({ name, push }));
  }

  #changed(): void {
    if (!this.#persisted) return;
    this.#persisted.dirty = true;
    this.#persisted.timer ??= setTimeout(() => void this.save(), SAVE_AFTER_MS).unref();
  }

  /** A push of `name` to this node: newer than any push of it known, even when this host's clock is behind. */
  next(name: string, digest: string): KnownPush {
    return { clock: nextClock(this.#byName.get(name)), node: this.self, digest };
  }


  /** Whether `push` is the newest push of `name` known. */
  isNewest(name: string, push: TagPush): boolean {
    return comparePushes(push, this.#byName.get(name)) >= 0;
  }
}
