// When each image and blob was last used (served to a client, pulled), so that eviction takes the least
// recently used first. Kept in memory, written to the data dir a few seconds after it changed, so that
// a restart does not make everything look equally old. Nothing is scheduled while nothing changes: an idle
// daemon is not woken for it.
import type { Logger } from 'pino';
import { readSaved, writeAtomically } from '../util/atomic-file.js';
import type { ImageStore, Store } from '../store/store.js';

const SAVE_AFTER_MS = 5_000;

export class UseLog {
  readonly #last = new Map<string, number>();
  #dirty = false;
  #timer?: NodeJS.Timeout;
  #closed = false;
  #failing = false;

  private constructor(private readonly file: string, private readonly log: Logger) {}

  /** Reads the file (absent: nothing used yet) and saves changes from now on. */
  static async open(file: string, log: Logger): Promise<UseLog> {
    const uses = new UseLog(file, log);
    const saved = await readSaved(file, log, 'last-use times');
    for (const [key, time] of Object.entries(typeof saved === 'object' && saved !== null ? saved : {})) {
      if (typeof time === 'number') uses.#last.set(key, time);
    }
    return uses;
  }

  /** `key` (an image name or a digest) was used now. */
  touch(key: string, now = Date.now()): void {
    this.#last.set(key, now);
    this.#changed();
  }

  /**
   * When any of `keys` was last used; never used ones count from when they were first asked about (an image
   * just replicated is new, not old).
   */
  lastUse(keys: string[], now = Date.now()): number {
    let last = 0;
    for (const key of keys) last = Math.max(last, this.#last.get(key) ?? 0);
    if (last > 0) return last;
    this.touch(keys[0], now);
    return now;
  }

  forget(key: string): void {
    if (this.#last.delete(key)) this.#changed();
  }

  /** Forgets every key not in `held`: what left the store, however it left. */
  retain(held: Set<string>): void {
    for (const key of this.#last.keys()) if (!held.has(key)) this.forget(key);
  }

  #changed(): void {
    this.#dirty = true;
    if (!this.#closed) this.#timer ??= setTimeout(() => void this.save(), SAVE_AFTER_MS).unref();
  }

  async save(): Promise<void> {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    if (!this.#dirty) return;
    this.#dirty = false;
    try {
      await writeAtomically(this.file, JSON.stringify(Object.fromEntries(this.#last)));
      this.#failing = false;
    } catch (err) {
      // Tried again 5 s later and at close: a warning when it starts failing, not one at each try.
      if (!this.#failing) this.log.warn({ file: this.file, err: (err as Error).message }, 'could not save last-use times; trying again later');
      this.#failing = true;
      this.#changed();
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    await this.save();
  }
}

/** The store as the registry uses it, noting each blob read and each image looked up by name as used. */
export function trackingUse(store: Store, uses: UseLog): Store {
  const images: ImageStore = {
    list: () => store.images.list(),
    put: (record) => store.images.put(record),
    delete: (name) => store.images.delete(name),
    get: async (name) => {
      const record = await store.images.get(name);
      if (record) uses.touch(name);
      return record;
    },
  };
  return {
    kind: store.kind,
    stat: (digest) => store.stat(digest),
    // Only what could be opened is noted: anyone who may read can ask for any digest.
    open: async (digest, range, requestedIn) => {
      const reader = await store.open(digest, range, requestedIn);
      uses.touch(digest);
      return reader;
    },
    // The registry sends blobs held as files through their path: asking for it is a use.
    localPath: (digest) => {
      uses.touch(digest);
      return store.localPath(digest);
    },
    beginUpload: (digest) => store.beginUpload(digest),
    delete: (digest) => store.delete(digest),
    blobs: () => store.blobs(),
    images,
    contentDir: store.contentDir,
    ...(store.containerImages && { containerImages: () => store.containerImages!() }),
    events: (signal) => store.events(signal),
    close: () => store.close(),
  };
}
