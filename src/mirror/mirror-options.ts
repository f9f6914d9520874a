// What the mirror is made of (MirrorOptions) and what a fetch through it asks and gets.
import type { Logger } from 'pino';
import type { Store, RequestedIn } from '../store/store.js';
import type { HolderDirectory } from '../dht/membership.js';
import type { PeerClient } from './peer-client.js';
import type { UpstreamSource } from './pull-through.js';
import type { Bandwidth } from './bandwidth.js';
import type { Spools } from './spools.js';
import type { LanedBlob } from './lanes.js';

export interface MirrorOptions {
  store: Store;
  spools: Spools;
  /** Who holds a key and where members' data planes are; this node's id goes with patient fetches, so that busy holders can redirect others to it. */
  members: HolderDirectory;
  /** Asks members' data planes, proving this node's membership (see peer-auth.ts) and their identity (peer-tls.ts). */
  peers: PeerClient;
  log: Logger;
  /** How long finding holders may take; nobody found by then means "not in the mesh". */
  lookupTimeoutMs: number;
  /** A peer that sends no byte for this long is given up for the next one. */
  stallTimeoutMs: number;
  /** Whether image names are looked up in the mesh (else only digests). */
  resolveTags: boolean;
  /**
   * After a local client has read a blob, how long its containerd may take to show it (it commits
   * what it pulled) before this node stores its own copy. Default 1 s.
   */
  clientCommitGraceMs?: number;
  /** Called when a blob starts arriving here (this node can serve it from now on); the result when it ends. */
  partialHolder?(digest: string): () => void;
  /** How long a patient fetch keeps looking for a holder with a free slot. Default 10 min. */
  patienceMs?: number;
  /** The last resort when no peer holds it (`--upstream`): the image's own registry. */
  upstream?: UpstreamSource;
  /** This node's bandwidth limits: downloads from peers and upstream, replication's (patient) fetches under their own. */
  bandwidth?: Bandwidth;
}

export interface FetchOptions {
  /** Peer ids known to hold the blob, asked besides those the DHT names. */
  from?: string[];
  /**
   * Replication, not a waiting client: holders may answer "busy" (they already serve this blob to
   * someone, see the peer data plane) and the fetch then waits for a free holder, partial copies
   * included, which turns a fan-out into a chain of streaming copies instead of a herd on one node.
   */
  patient?: boolean;
  /** The repository a client asked for it in: where the upstream is asked when no peer has it. */
  requestedIn?: RequestedIn;
  /** Other repositories clients joining the transfer asked for it in: asked in turn when the first cannot give it. */
  requestedAlsoIn?: RequestedIn[];
  /** The blob's bytes as feeders already send them (replication's stripes), tried before any other holder. */
  lanes?: LanedBlob;
}

/** A blob on its way here, as its fetcher sees it. */
export interface Fetching {
  /**
   * True once the bytes are here and verified, while they may still be going into the store: a
   * replication pipeline moves on to its next blob without waiting for the store's commit.
   */
  verified: Promise<boolean>;
  /** True once the store holds the blob; false when no holder sent the right bytes. */
  stored: Promise<boolean>;
}

/** Repositories a transfer asks the upstream in at most: the first client's and those of others that joined it. */
const MAX_REPOSITORIES_ASKED = 8;

/**
 * A fetch joining one under way lends it what it knows: a repository to fall back to the upstream in (a client
 * joining replication), the holders it names and its patience (replication joining a client's pull).
 */
export function joinOptions(running: FetchOptions, joining: FetchOptions): void {
  const asked = joining.requestedIn;
  if (!running.requestedIn) running.requestedIn = asked;
  else if (asked && !askedIn(running).some((r) => r.repo === asked.repo && r.manifest === asked.manifest)) {
    // Bounded: each is an upstream request when the others fail.
    if ((running.requestedAlsoIn ??= []).length < MAX_REPOSITORIES_ASKED) running.requestedAlsoIn.push(asked);
  }
  if (joining.from) running.from = [...new Set([...(running.from ?? []), ...joining.from])];
  if (joining.patient) running.patient = true;
}

/** The repositories clients asked for a transfer's blob in, the first client's first. */
export function askedIn(options: FetchOptions): RequestedIn[] {
  return [options.requestedIn, ...(options.requestedAlsoIn ?? [])].filter((r) => r !== undefined);
}
