// Replication's Prometheus metrics (prom-client's default registry; served at /metrics).
import { Counter, Gauge, Histogram } from 'prom-client';

export const replications = new Counter({
  name: 'layermesh_replications_total',
  help: 'Images this node copied because they were pushed elsewhere, by outcome: replicated, superseded (a newer push of the name came first), failed',
  labelNames: ['outcome'] as const,
});

export const replicatedBytes = new Counter({
  name: 'layermesh_replicated_bytes_total',
  help: 'Bytes of the blobs (configs, layers) of the images this node replicated',
});

export const replicationSeconds = new Histogram({
  name: 'layermesh_replication_duration_seconds',
  help: 'Time from hearing of a push to holding the whole image',
  buckets: [0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
});

export const replicationsInProgress = new Gauge({
  name: 'layermesh_replications_in_progress',
  help: 'Images being copied to this node now',
});
