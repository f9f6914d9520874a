// GET /metrics on the admin listener, in Prometheus's text format. The rooms count into prom-client's default
// registry (src/*/metrics.ts); what is read off this daemon's objects at scrape time (peers, announcements) and
// the process's own metrics live in a registry of the daemon's, merged with the default one for each scrape.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Counter, Gauge, register, Registry } from 'prom-client';
import type { DiskTotals, EvictedEntry } from '../api/admin-types.js';
import { isConnected, type Router } from '../dht/router.js';
import type { Holdings } from './holdings.js';

export interface MetricsSources {
  router: Pick<Router, 'peers'> & { readonly lastRepublish?: Date };
  holdings: Pick<Holdings, 'size'>;
  /** df's bytes per category (undefined when the store could not be surveyed). */
  disk(): Promise<DiskTotals | undefined>;
}

const evictions = new Counter({ name: 'layermesh_evictions_total', help: 'Images and cached blobs removed by eviction, prune or rm' });
const evictedBytes = new Counter({ name: 'layermesh_evicted_bytes_total', help: 'Bytes freed by eviction, prune or rm' });

export function countEviction(entry: EvictedEntry): void {
  evictions.inc();
  evictedBytes.inc(entry.bytes);
}

const EVENT_LOOP_SAMPLE_MS = 5_000;

const CATEGORIES = ['pinned', 'pushed', 'pulled', 'replicated', 'cache'] as const;

function daemonRegistry({ router, holdings, disk }: MetricsSources): Registry {
  const own = new Registry();
  // The event loop lag histogram samples on a libuv timer; prom-client's default of every 10 ms woke an idle
  // daemon 100 times a second, about 1 % of a core on its own, and each wake costs. Every 5 s still shows a loop
  // that stays blocked; nodejs_eventloop_lag_seconds measures at each scrape.
  collectDefaultMetrics({ register: own, eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  new Gauge({
    name: 'layermesh_connected_peers', help: 'Members this node is connected to', registers: [own],
    collect() { this.set(router.peers().filter(isConnected).length); },
  });
  new Gauge({
    name: 'layermesh_known_members', help: 'Members this node knows, connected to or heard of', registers: [own],
    collect() { this.set(router.peers().length); },
  });
  new Gauge({
    name: 'layermesh_announced_keys', help: 'Digests and image names this node announces in the DHT', registers: [own],
    collect() { this.set(holdings.size); },
  });
  new Gauge({
    name: 'layermesh_last_republish_timestamp_seconds', help: 'When this node last republished its announcements (Unix time; 0 before the first)', registers: [own],
    collect() { this.set((router.lastRepublish?.getTime() ?? 0) / 1000); },
  });
  new Gauge({
    name: 'layermesh_disk_bytes', help: 'Bytes the store holds, by category as meshctl df counts them: pinned, pushed, pulled, replicated, cache',
    labelNames: ['category'] as const, registers: [own],
    async collect() {
      const totals = await disk();
      // No figures rather than stale ones while the store cannot be surveyed.
      if (!totals) this.reset();
      else for (const category of CATEGORIES) this.set({ category }, totals[category]);
    },
  });
  return own;
}

export function registerMetrics(app: FastifyInstance, sources: MetricsSources): void {
  const own = daemonRegistry(sources);
  app.get('/metrics', async (_req, reply) => {
    const merged = Registry.merge([register, own]);
    return reply.type(merged.contentType).send(await merged.metrics());
  });
}
