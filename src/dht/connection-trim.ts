// Keeps a node's connections near its cap. libp2p's own pruner closes only connections with no stream open
// but identify's, and gossipsub keeps a stream open on every connection: past the cap nothing was closed,
// and the connections kad-dht's lookups made stayed, until every node of a fleet was connected to every
// other. Here a connection counts as idle when its streams are only gossip, identify and ping, and the
// idle ones beyond the cap are closed: the least valued (libp2p's peer tags) first, the newest first
// among equals. Peers tagged keep-alive (kad-dht's closest, which libp2p would dial again at once) are never
// closed, nor connections younger than GRACE_MS: a joining node's first connections (to a bootstrap peer at
// its cap) must live long enough for it to find the others.
import type { Connection, PeerId, PeerStore } from '@libp2p/interface';
import type { Logger } from 'pino';

/** Streams that stay open on a connection nobody is using. */
const IDLE_PROTOCOLS = [/^\/meshsub\//, /^\/ipfs\/id\//, /^\/ipfs\/ping\//];
/** Trims wait this long after the connection that went over the cap: lookups open several at once. */
const SETTLE_MS = 1_000;
/** Connections this young are not closed; a trim that leaves the node over its cap runs again after this long. */
const GRACE_MS = 30_000;
/** A close that takes longer is an abort, which the peer cannot tell from a lost connection (roster.ts). */
const CLOSE_TIMEOUT_MS = 10_000;

const trimmed = new WeakSet<Connection>();

/** yamux's GoAway code for a connection closed on purpose. */
const NORMAL_TERMINATION = 0;

/**
 * Closed on purpose, not lost: trimmed here, or closed by the peer (its trim or stop: yamux's GoAway with
 * normal termination, which a killed process never sends). A connection this node drops for want of pings
 * is lost; yamux cannot tell that from its own closes, hence the trim's record.
 */
export function closedOnPurpose(conn: Connection): boolean {
  const muxer = (conn as { muxer?: { remoteGoAway?: number } }).muxer;
  return trimmed.has(conn) || muxer?.remoteGoAway === NORMAL_TERMINATION;
}

/** The part of libp2p the trim uses. */
export interface TrimmedNode {
  getConnections(peer?: PeerId): Connection[];
  peerStore: Pick<PeerStore, 'get'>;
  addEventListener(type: 'connection:open', listener: () => void): void;
  removeEventListener(type: 'connection:open', listener: () => void): void;
}

export class ConnectionTrim {
  private timer?: NodeJS.Timeout;
  private running = false;
  private stopped = false;
  private readonly onOpen = (): void => {
    if (this.timer === undefined && !this.running && !this.stopped && this.libp2p.getConnections().length > this.max) {
      this.timer = setTimeout(() => void this.trim(), SETTLE_MS);
    }
  };

  constructor(
    private readonly libp2p: TrimmedNode,
    private readonly log: Logger,
    private readonly max: number,
  ) {}

  start(): void {
    this.libp2p.addEventListener('connection:open', this.onOpen);
  }

  stop(): void {
    this.stopped = true;
    this.libp2p.removeEventListener('connection:open', this.onOpen);
    clearTimeout(this.timer);
  }

  /** Closes idle connections beyond the cap; resolves when they are closed. */
  async trim(): Promise<void> {
    this.timer = undefined;
    this.running = true;
    try {
      const connections = this.libp2p.getConnections();
      const surplus = connections.length - this.max;
      if (surplus <= 0) return;
      const candidates: Array<{ conn: Connection; value: number }> = [];
      const now = Date.now();
      for (const conn of connections) {
        if (!isIdle(conn) || now - conn.timeline.open < GRACE_MS) continue;
        const value = await this.valueOf(conn.remotePeer);
        if (value !== undefined) candidates.push({ conn, value });
      }
      candidates.sort((a, b) => a.value - b.value || b.conn.timeline.open - a.conn.timeline.open);
      const closing = candidates.slice(0, surplus).map((c) => c.conn);
      if (closing.length < surplus && this.timer === undefined) this.timer = setTimeout(() => void this.trim(), GRACE_MS);
      this.log.debug({ connections: connections.length, max: this.max, closing: closing.length }, 'trimming connections');
      closing.forEach((conn) => trimmed.add(conn));
      await Promise.all(closing.map((conn) => conn.close({ signal: AbortSignal.timeout(CLOSE_TIMEOUT_MS) }).catch((err: Error) => conn.abort(err))));
    } finally {
      this.running = false;
      this.onOpen(); // connections opened while this one ran were not looked at
    }
  }

  /** The sum of the peer's tags, or undefined for a peer that must stay (tagged keep-alive). */
  private async valueOf(peer: PeerId): Promise<number | undefined> {
    try {
      const { tags } = await this.libp2p.peerStore.get(peer);
      if ([...tags.keys()].some((name) => name.startsWith('keep-alive'))) return undefined;
      return [...tags.values()].reduce((sum, tag) => sum + tag.value, 0);
    } catch (err) {
      if ((err as Error).name !== 'NotFoundError') this.log.warn({ peer: peer.toString(), err: (err as Error).message }, 'cannot read peer tags');
      return 0;
    }
  }
}

function isIdle(conn: Connection): boolean {
  return conn.streams.every((s) => s.protocol !== undefined && IDLE_PROTOCOLS.some((p) => p.test(s.protocol!)));
}
