// The mirror's and the peer data plane's Prometheus metrics (prom-client's default registry; served by the node
// at /metrics).
import { Counter } from 'prom-client';

export type MirrorOutcome = 'peer' | 'upstream' | 'not_found' | 'failed';

export const mirrorRequests = new Counter({
  name: 'layermesh_mirror_requests_total',
  help: 'Blobs the mirror looked for on behalf of registry clients, by outcome: peer, upstream, not_found, failed (hits, held here: layermesh_registry_blobs_served_total{source="local"})',
  labelNames: ['outcome'] as const,
});

export const fetchedBytes = new Counter({
  name: 'layermesh_fetched_bytes_total',
  help: 'Verified blob bytes brought to this node, by source: peer, upstream',
  labelNames: ['source'] as const,
});

export const peerSentBytes = new Counter({
  name: 'layermesh_peer_sent_bytes_total',
  help: 'Blob bytes this node\'s data plane sent to members (counted when a response ends, also one cut short, and as each blob of a sequence is sent whole)',
});

export const hedges = new Counter({
  name: 'layermesh_mirror_hedges_total',
  help: 'Requests also sent to the next holder because the first was slow to answer',
});

export const failovers = new Counter({
  name: 'layermesh_mirror_failovers_total',
  help: 'Transfers that broke off and went on from another holder',
});

export const peersStruck = new Counter({
  name: 'layermesh_mirror_peers_struck_total',
  help: 'Times a peer sent bytes that did not match their digest (it goes last for an hour)',
});
