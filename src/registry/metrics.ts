// The registry's Prometheus metrics (prom-client's default registry; served by the node at /metrics).
import { Counter, Gauge } from 'prom-client';

export const uploadsInProgress = new Gauge({
  name: 'layermesh_uploads_in_progress',
  help: 'Upload sessions open on the registry',
});

export const uploadsEnded = new Counter({
  name: 'layermesh_uploads_total',
  help: 'Upload sessions ended, by outcome: committed, rejected (wrong digest or size, too large, disk full), cancelled, expired, aborted (at shutdown)',
  labelNames: ['outcome'] as const,
});

export const blobsServed = new Counter({
  name: 'layermesh_registry_blobs_served_total',
  help: 'Blob requests (GET, HEAD) the registry answered, by where the blob came from: local (held here: a mirror hit), mesh (it arrived for the request)',
  labelNames: ['source'] as const,
});

export const sentBytes = new Counter({
  name: 'layermesh_registry_sent_bytes_total',
  help: 'Blob bytes the registry sent to its clients, by where they came from (local, mesh); counted when a response ends, also one cut short',
  labelNames: ['source'] as const,
});
