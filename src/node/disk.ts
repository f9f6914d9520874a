// The daemon's disk keeping, wired from its configuration: last-use times, the evictor and its timer, and
// rm --mesh as the other members carry it out.
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { RemoveEvent, Router } from '../dht/router.js';
import type { Store } from '../store/store.js';
import type { EvictedEntry } from '../api/admin-types.js';
import type { Config } from './config.js';
import type { EventLog } from './event-log.js';
import { Evictor } from './evictor.js';
import { TotalsCache } from './disk-totals.js';
import type { Holdings } from './holdings.js';
import { meshRemoval } from './mesh-removal.js';
import { RetryTimers } from './retries.js';
import type { NewestPushes } from './newest-pushes.js';
import { UseLog } from './use-log.js';

export interface DiskDeps {
  store: Store;
  router: Pick<Router, 'id' | 'findProviders'>;
  holdings: Pick<Holdings, 'reconcile'>;
  /** Names and digests being copied or arriving here now. */
  inFlight(): Set<string>;
  events: EventLog;
  /** The newest push of each name known here. */
  pushes: Pick<NewestPushes, 'get'>;
  nameOf(id: string): string;
  log: Logger;
  onEvicted?(entry: EvictedEntry): void;
}

export interface Disk {
  evictor: Evictor;
  /** df's totals for what polls them. */
  totals: TotalsCache;
  uses: UseLog;
  onRemoval(event: RemoveEvent): void;
  close(): Promise<void>;
}

export async function startDisk(config: Config, deps: DiskDeps): Promise<Disk> {
  const log = deps.log.child({ component: 'disk' });
  const marks = config.diskWatermarks;
  if (marks && 'percent' in marks.high && !deps.store.contentDir) {
    throw new Error(`--disk-high ${marks.high.percent}%: this ${deps.store.kind} store has no content directory meshd can see to measure; give sizes (e.g. 50GiB)`);
  }
  const uses = await UseLog.open(join(config.dataDir, 'last-use.json'), log);
  const evictor = new Evictor({
    store: deps.store,
    router: deps.router,
    uses,
    inFlight: deps.inFlight,
    watermarks: config.diskWatermarks,
    minCopies: config.minCopies,
    evictLocal: config.evictLocal,
    uploadGraceMs: config.uploadTimeoutMs,
    intervalMs: config.diskCheckIntervalMs,
    log,
    events: deps.events,
    node: config.nodeName,
    onEvicted: deps.onEvicted,
    removed: () => deps.holdings.reconcile(),
  });
  evictor.start();
  const retries = new RetryTimers();
  const removal = meshRemoval({ evictor, policy: config.replicate, self: { name: config.nodeName, labels: config.labels }, pushes: deps.pushes, nameOf: deps.nameOf, log, retries });
  return {
    evictor,
    totals: new TotalsCache(deps.store, log),
    uses,
    onRemoval: removal,
    close: async () => {
      retries.stop();
      evictor.stop();
      await uses.close();
    },
  };
}
