// GET /metrics on the admin listener, in Prometheus's text format. The rooms count into prom-client's default
// registry (src/*/metrics.ts); what is read off this daemon's objects at scrape time (peers, announcements) and
// the process's own metrics live in a registry of the daemon's, merged with the default one for each scrape.
import type { FastifyInstance } from 'fastify';
import { collectDefaultMetrics, Gauge, register, Registry } from 'prom-client';
import type { Router } from '../dht/router.js';
import type { Holdings } from './holdings.js';

export interface MetricsSources {
  router: Pick<Router, 'peers'> & { readonly lastRepublish?: Date };
  holdings: Pick<Holdings, 'size'>;
}

function daemonRegistry({ router, holdings }: MetricsSources): Registry {
  const own = new Registry();
  collectDefaultMetrics({ register: own });
  new Gauge({
    name: 'layermesh_connected_peers', help: 'Members this node is connected to', registers: [own],
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
  return own;
}

export function registerMetrics(app: FastifyInstance, sources: MetricsSources): void {
  const own = daemonRegistry(sources);
  app.get('/metrics', async (_req, reply) => {
    const merged = Registry.merge([register, own]);
    return reply.type(merged.contentType).send(await merged.metrics());
  });
}
