// The mesh's routing boundary: who holds a key, and events to every member.
// Keys are digests (`sha256:<hex>`) and image names (`docker.io/library/app:1`).

export interface PeerRef {
  /** libp2p peer id. */
  id: string;
  /** libp2p multiaddrs the peer is reachable on. */
  addrs: string[];
}

export interface PeerStatus extends PeerRef {
  /** False for a member known only from its announcements or others' lists: not connected to now. */
  connected?: false;
  /** Last measured round-trip time, when known. */
  rttMs?: number;
  /** What the peer told us about itself (name, data plane), when known. */
  info?: NodeInfo;
}

/** A member this node is connected to now, not one it only heard of. */
export const isConnected = (p: PeerStatus): boolean => p.connected !== false;

/** What a node tells its peers about itself on connect. */
export interface NodeInfo {
  name: string;
  labels: Record<string, string>;
  /** Port of the peer data plane (HTTP), on the addresses the peer is reachable at; 0 when it has none. */
  dataPlanePort: number;
  /** The node's replication policy, so that every node can tell which others copy a push. */
  replicate?: string;
}

export interface MeshEvent {
  type: 'image-pushed';
  /** Image name as stored: `docker.io/library/app:1`. */
  image: string;
  /** Root manifest or index digest. */
  digest: string;
  /** Peer id of the node pushed to, which holds it; gossipsub signs the event with its key (see mesh-events.ts). */
  node: string;
  /** The push's clock (src/oci/tag-push.ts): with `node`, orders the pushes of one name across the mesh. */
  clock: number;
  /** Replication policy for this push, replacing each node's own (`all`, `none`, a selector). */
  replicate?: string;
  /**
   * Small blobs of the image (root manifest first, then configs and child manifests), base64 by digest,
   * so that takers start on the layers at once instead of asking the origin first. Verified like any blob.
   */
  inline?: Record<string, string>;
  /**
   * The takers the node pushed to expects, by tag (replication-plan.ts takerTag), in the image's taker order:
   * every taker plans on this one list, so that members whose views of the mesh differ still agree on the plan.
   */
  takers?: string[];
}

/** A member asks every node to remove an image (meshctl rm --mesh). */
export interface RemoveEvent {
  type: 'image-removed';
  /** Image name as stored. */
  image: string;
  /** Peer id of the node asking. */
  node: string;
}

/** What travels on the mesh's gossip, signed by the node it names. */
export type GossipEvent = MeshEvent | RemoveEvent;

export interface AnnounceChange {
  add?: Iterable<string>;
  remove?: Iterable<string>;
  /** Announce now, with whatever is pending, rather than after the pause between batches (an image name completing a push). */
  urgent?: boolean;
}

export interface Router {
  /** This node's peer id. */
  readonly id: string;
  /**
   * Keys this node holds from now on, and keys it no longer holds. Added keys are announced
   * (batched), all held keys are republished before their records expire, removed keys are not.
   */
  announce(change: AnnounceChange): void;
  /** Peers that announce `key`, this node included when it holds it. Ends when the lookup is done or aborted. */
  findProviders(key: string, signal?: AbortSignal): AsyncIterable<PeerRef>;
  /** The members this node knows of: its connected peers, then members it heard of (roster.ts). */
  peers(): PeerStatus[];
  publish(event: GossipEvent): Promise<void>;
  /** Validated events from other members. */
  onEvent(handler: (event: GossipEvent, from: string) => void): void;
}
