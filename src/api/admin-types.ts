// What the daemon's admin API (/_mesh/v1/…) and meshctl exchange, as JSON: the one place both sides take the
// shape of an answer from. Types only; the daemon side is src/node/admin-api.ts, the client side src/cli.
import type { PeerStatus } from '../dht/router.js';
import type { Origin } from '../store/store.js';
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

/** One row of GET /_mesh/v1/peers: a member (connected, or only heard of), how many keys it announces and its disk, when it said so. */
export type PeerEntry = PeerStatus & { keys?: number; disk?: DiskTotals };

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
  /** The push's own replication policy, when the node it names holds it (the push was to that node) and it carried one. */
  replicate?: string;
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
  kind: 'pushed' | 'replicated' | 'superseded' | 'replication-failed' | 'evicted';
  image: string;
  digest?: string;
  /** Name (or peer id) of the node it happened on, or that pushed. */
  node?: string;
  detail?: string;
}

/** One image of GET /_mesh/v1/df. */
export interface DiskImage {
  name: string;
  digest: string;
  /** How it came: pushed to this node, copied by replication, or pulled by the host's own clients. */
  origin: Origin;
  /** A container on this host was created from it: never evicted. */
  pinned: boolean;
  /** Bytes of every blob it references that this node holds (blobs shared with other images count in each). */
  bytes: number;
  /** ISO 8601: when it was last served or pulled (or first seen, if never). */
  lastUse: string;
}

/**
 * GET /_mesh/v1/df: the bytes of the store's blobs, each blob counted once, in the first category that holds
 * it: pinned (images containers use), pushed, pulled, replicated, then cache (blobs no image references:
 * what the mirror brought for clients). The categories add up to `total`.
 */
export interface DiskUsage {
  total: number;
  pinned: number;
  pushed: number;
  pulled: number;
  replicated: number;
  cache: number;
  /** The store's filesystem, when the store has one. */
  filesystem?: { size: number; free: number };
  /** What the watermarks measure now and where they are, in bytes; absent when none are set. */
  watermarks?: { measured: number; high: number; low: number };
  images: DiskImage[];
}

/** df's bytes per category, as members tell them in their inventories (for the status page). */
export type DiskTotals = Pick<DiskUsage, 'total' | 'pinned' | 'pushed' | 'pulled' | 'replicated' | 'cache'>;

/** GET /_mesh/v1/df?totals: the totals (a few seconds old at most) and the filesystem, without the per-image list. */
export type DiskSummary = DiskTotals & Pick<DiskUsage, 'filesystem'>;

/** Something eviction, prune or rm removed from a node. */
export interface EvictedEntry {
  /** Image name, or the digest of a cached blob. */
  image: string;
  digest: string;
  bytes: number;
  reason: string;
  /** Other nodes that held it when it went. */
  copies?: number;
}

/** The answer of POST /_mesh/v1/prune and DELETE /_mesh/v1/images. */
export interface EvictionReport {
  evicted: EvictedEntry[];
  freed: number;
  /** Why something asked for stayed (pinned by a container, nothing evictable left). */
  kept?: string;
  /** It stayed only for now: it shares blobs with an image being copied here, and may go once that copy ends. */
  untilCopied?: boolean;
  /** rm --mesh: the removal was sent to every member. */
  published?: boolean;
}
