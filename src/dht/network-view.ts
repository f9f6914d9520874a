// The DHT servers this node knows, found with as few lookups as possible, so that the closest peers of
// thousands of keys can be computed locally instead of walking the DHT once per key.
import type { PeerId } from '@libp2p/interface';
import type { Logger } from 'pino';
import { peerKadId, regionTargets } from './kad-keys.js';
import { KAD_PROTOCOL, type MeshLibp2p } from './libp2p-node.js';

export interface ViewPeer {
  id: PeerId;
  kadId: Uint8Array;
}

/** Beyond 2^8 regions (~5,000 peers at k = 20) a fleet needs a real crawler; this is for fleets below that. */
const MAX_REGION_BITS = 8;
const WALK_CONCURRENCY = 4;
/** A walk that takes longer (e.g. peers connected but not yet in kad-dht's routing table) ends with what it found. */
const WALK_TIMEOUT_MS = 10_000;
/** How long after connecting a peer's provider records are taken to be here (its catch-up batch, with room for a retry). */
const CAUGHT_UP_MS = 5_000;

export class NetworkView {
  private walked = new Map<string, PeerId>();
  private walkedAt = 0;
  /** Whether the last walk ran to its end (none of its lookups cut short). */
  private walkedAll = false;
  private walking?: Promise<void>;

  constructor(
    private readonly libp2p: MeshLibp2p,
    private readonly k: number,
    private readonly maxAgeMs: number,
    private readonly log: Logger,
  ) {}

  /** Forget a peer that could not be reached (until a later walk finds it again). */
  forget(peer: string): void {
    this.walked.delete(peer);
  }

  /**
   * Known DHT servers: connected ones plus those the last walks found. A walk goes toward our own id,
   * which in a fleet of fewer than k peers returns them all; in larger fleets, one per region of the key
   * space, with as many regions as it takes for each to hold about k/2 peers, so every key's k closest
   * peers are among those found. It is awaited when asked for (`fresh`) or when there has been none yet;
   * a view older than `maxAgeMs` is refreshed in the background (announcing with a view a minute old
   * beats waiting for a walk, and a push must not start a walk on every node at once).
   */
  async peers(signal: AbortSignal, fresh = false): Promise<ViewPeer[]> {
    const connected = await this.connectedServers();
    if (connected.length === 0) return [];
    if (fresh || this.walkedAt === 0) {
      await this.refresh(signal);
      signal.throwIfAborted();
    } else {
      this.warm(signal);
    }
    const all = new Map(this.walked);
    for (const id of connected) all.set(id.toString(), id);
    all.delete(this.libp2p.peerId.toString());
    return [...all.values()].map((id) => ({ id, kadId: peerKadId(id) }));
  }

  /**
   * Whether this node stores every provider record of the fleet, so that asking the network would only cost
   * every peer a request (and this node a peer-store merge per peer each answer names) to learn nothing new:
   * the last whole walk found fewer than k other servers, so each announcement goes to every member
   * (provider-batches.ts); this node is connected to all of them, and has been for longer than a holder takes
   * to send a newly identified peer its records (the catch-up batch, about 1-2 s after identify).
   */
  holdsEveryRecord(now = Date.now()): boolean {
    if (!this.walkedAll || this.walked.size >= this.k) return false;
    const since = new Map<string, number>();
    for (const c of this.libp2p.getConnections()) {
      const id = c.remotePeer.toString();
      since.set(id, Math.min(since.get(id) ?? Infinity, c.timeline.open));
    }
    const self = this.libp2p.peerId.toString();
    if (since.size >= this.k || [...this.walked.keys()].some((id) => id !== self && !since.has(id))) return false;
    return [...since.values()].every((open) => now - open >= CAUGHT_UP_MS);
  }

  /** Starts a walk in the background when the view is stale (or there is none): a peer joined, say. */
  warm(signal: AbortSignal): void {
    if (Date.now() - this.walkedAt > this.maxAgeMs) void this.refresh(signal);
  }

  /** Starts the first walk in the background, unless there has been one. */
  warmFirst(signal: AbortSignal): void {
    if (this.walkedAt === 0) void this.refresh(signal);
  }

  /**
   * Walks the DHT; callers meanwhile share the walk under way (`signal` is the node's: it ends when the
   * node stops). It never fails: a walk cut short ends with what it found.
   */
  private refresh(signal: AbortSignal): Promise<void> {
    this.walking ??= this.walk(AbortSignal.any([signal, AbortSignal.timeout(WALK_TIMEOUT_MS)])).finally(() => (this.walking = undefined));
    return this.walking;
  }

  private async walk(signal: AbortSignal): Promise<void> {
    const started = Date.now();
    const found = new Map<string, PeerId>();
    let lookups = 1;
    let whole = await this.closestPeers(this.libp2p.peerId.toMultihash().bytes, found, signal);
    for (let bits = 0; found.size >= this.k; ) {
      const want = Math.min(MAX_REGION_BITS, Math.ceil(Math.log2(found.size / this.k)) + 1);
      if (want <= bits) break;
      bits = want;
      const targets = regionTargets(bits);
      lookups += targets.length;
      for (let i = 0; i < targets.length; i += WALK_CONCURRENCY) {
        const done = await Promise.all(targets.slice(i, i + WALK_CONCURRENCY).map((t) => this.closestPeers(t, found, signal)));
        whole &&= done.every(Boolean);
      }
    }
    this.walked = found;
    this.walkedAt = Date.now();
    this.walkedAll = whole && !signal.aborted;
    this.log.debug({ peers: found.size, lookups, ms: this.walkedAt - started }, 'walked the DHT');
  }

  /** Adds the closest peers of key to `into`; false when the lookup was cut short. */
  private async closestPeers(key: Uint8Array, into: Map<string, PeerId>, signal: AbortSignal): Promise<boolean> {
    try {
      for await (const event of this.libp2p.services.dht.getClosestPeers(key, { signal })) {
        if (event.name === 'FINAL_PEER') into.set(event.peer.id.toString(), event.peer.id);
      }
      return true;
    } catch (err) {
      this.log.debug({ err: (err as Error).message }, 'DHT walk ended early; using what it found');
      return false;
    }
  }

  private async connectedServers(): Promise<PeerId[]> {
    const servers: PeerId[] = [];
    for (const id of this.libp2p.getPeers()) {
      try {
        const peer = await this.libp2p.peerStore.get(id);
        if (peer.protocols.includes(KAD_PROTOCOL)) servers.push(id);
      } catch {
        // not identified yet: the next batch will see it
      }
    }
    return servers;
  }
}
