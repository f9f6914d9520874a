// The DHT's Prometheus metrics (prom-client's default registry; served by the node at /metrics).
import { Histogram } from 'prom-client';

export const lookupSeconds = new Histogram({
  name: 'layermesh_dht_lookup_seconds',
  help: 'Time from asking the DHT for the holders of a key to the first holder found (result="found"), or to the end of a lookup that found none',
  labelNames: ['result'] as const,
  buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5],
});
