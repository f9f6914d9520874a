// df's totals for what asks for them often: the status page every second, members with every inventory, Prometheus
// at each scrape. One survey of the store answers them for a few seconds; a store that cannot be surveyed
// (containerd restarting) is tried again no sooner, and told of once.
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { DiskSummary, DiskTotals } from '../api/admin-types.js';
import { categorize, filesystemOf, survey } from './disk-usage.js';

/** Short enough that a copy just finished shows on the status page within a few polls. */
const MAX_AGE_MS = 5_000;

export class TotalsCache {
  #last?: { at: number; value: Promise<DiskTotals | undefined> };
  #failing = false;

  constructor(private readonly store: Store, private readonly log: Logger) {}

  /** The totals, at most MAX_AGE_MS old; undefined when the store could not be surveyed. */
  get(): Promise<DiskTotals | undefined> {
    if (!this.#last || Date.now() - this.#last.at > MAX_AGE_MS) {
      const value = survey(this.store).then((held) => {
        this.#failing = false;
        return categorize(held);
      }, (err: Error) => {
        if (!this.#failing) this.log.warn({ err: err.message }, 'could not survey the store for the disk totals; trying again every few seconds');
        this.#failing = true;
        return undefined;
      });
      this.#last = { at: Date.now(), value };
    }
    return this.#last.value;
  }

  /** df without its per-image list: the totals, and the store's filesystem; undefined as get() is. */
  async summary(): Promise<DiskSummary | undefined> {
    const totals = await this.get();
    if (!totals) return undefined;
    const filesystem = await filesystemOf(this.store.contentDir);
    return { ...totals, ...(filesystem && { filesystem }) };
  }
}
