// What the daemon's admin API (/_mesh/v1/…) and meshctl exchange, as JSON: the one place both sides take the
// shape of an answer from. Types only; the daemon side is src/node/admin-api.ts, the client side src/cli.
import type { PeerStatus } from '../dht/router.js';
import type { TagPush } from '../oci/tag-push.js';

/** GET /_mesh/v1/status: who the node is, where it listens, what it announces. */
export interface NodeStatus {
  id: string;
  name: string;
  labels: Record<string, string>;
  /** The registry's URL (the admin API listens beside it). */
  registry: string;
  /** libp2p multiaddrs, with /p2p/<id>. */
  p2p: string[];
  /** The store kind: containerd, fs, memory. */
  store: string;
  swarmKey: boolean;
  /** Connected peers. */
  peers: number;
  announcedKeys: number;
  /** ISO 8601; absent before the first one. */
  lastReconcile?: string;
  lastRepublish?: string;
}

/** One row of GET /_mesh/v1/peers: a connected peer, and how many keys it announces when it said so. */
export type PeerEntry = PeerStatus & { keys?: number };

/** One provider of GET /_mesh/v1/who-has. */
export interface WhoHasEntry {
  id: string;
  name?: string;
  addrs: string[];
  rttMs?: number;
  self: boolean;
  /** For an image name: the manifest the provider names it after, when its inventory said so. */
  digest?: string;
  /** For an image name: the push the provider follows (absent: tagged outside the mesh, or an older node). */
  push?: TagPush;
}

/** GET /_mesh/v1/who-has?key=…: providers nearest first (this node, then by round-trip time). */
export interface WhoHasAnswer {
  key: string;
  providers: WhoHasEntry[];
}

/** One row of GET /_mesh/v1/images: a tagged image a node holds (also what nodes tell each other in their inventories). */
export interface ImageEntry {
  name: string;
  digest: string;
  /** The push the node follows for this name; absent for images tagged outside the mesh. */
  push?: TagPush;
}

/** An image being copied to a node: bytes of its blobs there so far, of `total`. */
export interface ImageFetch {
  image: string;
  digest: string;
  bytes: number;
  total: number;
}

/** A node, as the rows of GET /_mesh/v1/images?mesh=1 name it. */
export interface NodeRef {
  id: string;
  name: string;
}

/**
 * One row of GET /_mesh/v1/images?mesh=1, one per image and digest: the nodes that hold it whole (the asked
 * node first), and those still copying it.
 */
export interface MeshImageRow {
  name: string;
  digest: string;
  nodes: NodeRef[];
  fetching: (NodeRef & { bytes: number; total: number })[];
  /** The newest push of this digest under this name among its holders. */
  push?: TagPush;
  /**
   * Set when holders of the name hold different digests: `newest` on the row of the newest push (the one
   * every node converges on), `older` on the others.
   */
  conflict?: 'newest' | 'older';
}

/** One row of GET /_mesh/v1/events?since=SEQ: something that happened, oldest first. */
export interface FleetEvent {
  seq: number;
  /** ISO 8601. */
  time: string;
  kind: 'pushed' | 'replicated' | 'replication-failed' | 'evicted';
  image: string;
  digest?: string;
  /** Name (or peer id) of the node it happened on, or that pushed. */
  node?: string;
  detail?: string;
}
