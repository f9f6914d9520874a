// Keeps the node connected to some of its static bootstrap peers. libp2p 3 dials nothing by itself after
// start, and its reconnect queue gives up after a few tries, so a bootstrap peer that restarts (or boots
// after us) would otherwise stay unreachable until some other peer introduced it again.
//
// A fleet starts (or a bootstrap peer comes back) with every node dialing at once: first dials and retries
// are jittered, so that a few hundred nodes do not hit one peer's event loop in the same instant and time
// out together, round after round. Only `keep` of the listed peers are kept connected, so that a fleet-wide
// list of a few bootstrap peers does not give each of them a connection from every node, and only while the
// node has fewer than `enough` connections: past that it is in the mesh, and a bootstrap peer at its
// connection cap may close the connection without having it dialed again at once. Once it has what it wants,
// the dialer sleeps until a connection closes: an idle node spends nothing on it.
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Connection, PeerId } from '@libp2p/interface';
import type { Logger } from 'pino';
import { shuffle } from '../util/shuffle.js';

export interface BootstrapDialerOptions {
  /** How often to look for bootstrap peers to dial while some are wanted, and the first retry delay after a failure. */
  intervalMs: number;
  /** Upper bound of the doubling retry delay. */
  maxDelayMs: number;
  /** How many of the listed peers to stay connected to (all of them when fewer are listed). */
  keep: number;
  /** Connections (to anyone) past which the node is in the mesh and bootstrap peers are left alone. */
  enough: number;
  /** Deadline of one dial; a peer busy accepting a whole fleet takes seconds to finish a handshake. */
  dialTimeoutMs: number;
  /** Uniform in [0, 1); for tests. */
  random?: () => number;
}

/** The part of libp2p the dialer uses. */
export interface Dialable {
  peerId: PeerId;
  dial(addr: Multiaddr, opts: { signal: AbortSignal }): Promise<Connection>;
  getConnections(peer?: PeerId): Connection[];
  addEventListener(type: 'connection:close', listener: () => void): void;
  removeEventListener(type: 'connection:close', listener: () => void): void;
}

interface Target {
  addr: Multiaddr;
  /** From the address's /p2p/ part, or learned from the first successful dial. */
  peerId?: PeerId;
  nextAt: number;
  failures: number;
}

/** Delay before the next try after `failures` failures in a row: doubling, capped, then jittered into [d/2, d). */
export function retryDelayMs(failures: number, opts: Pick<BootstrapDialerOptions, 'intervalMs' | 'maxDelayMs'>, random: () => number): number {
  const d = Math.min(opts.intervalMs * 2 ** Math.max(0, failures - 1), opts.maxDelayMs);
  return d / 2 + random() * (d / 2);
}

export class BootstrapDialer {
  private readonly targets: Target[];
  private readonly random: () => number;
  /** Set while a check is due; undefined while a check runs or the dialer sleeps. */
  private timer?: NodeJS.Timeout;
  private running = false;
  private stopped = false;

  constructor(
    private readonly libp2p: Dialable,
    addrs: readonly string[],
    private readonly log: Logger,
    private readonly opts: BootstrapDialerOptions,
  ) {
    const self = libp2p.peerId.toString();
    this.random = opts.random ?? Math.random;
    this.targets = addrs
      .map((a) => {
        const addr = multiaddr(a);
        const id = addr.getComponents().find((c) => c.name === 'p2p')?.value;
        return { addr, peerId: id === undefined ? undefined : peerIdFromString(id), nextAt: 0, failures: 0 };
      })
      .filter((t) => t.peerId?.toString() !== self); // one fleet-wide list may name this node too
  }

  start(): void {
    if (this.targets.length === 0) return;
    this.libp2p.addEventListener('connection:close', this.onClose);
    // The first dial waits up to half an interval: nodes started together spread their handshakes.
    this.schedule(this.random() * (this.opts.intervalMs / 2));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.libp2p.removeEventListener('connection:close', this.onClose);
  }

  // Only a closed connection can make a bootstrap peer wanted again. Nodes that lose the same peer (it
  // restarted) look within an interval, each at its own moment.
  private readonly onClose = (): void => {
    if (this.timer === undefined && !this.running) this.schedule(this.random() * this.opts.intervalMs);
  };

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.tick();
    }, delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    this.running = true;
    const now = Date.now();
    // Random order: every node of a fleet reads the same list, and must not all pick its first entries.
    const due = shuffle(this.targets.filter((t) => t.nextAt <= now && !this.connected(t)), this.random).slice(0, this.wanted());
    await Promise.all(due.map((t) => this.dial(t)));
    this.running = false;
    if (this.wanted() === 0) return; // asleep until a connection closes
    // A jittered retry falls between two checks: wake for it, or its jitter would be rounded to the interval.
    const later = Date.now();
    const retries = this.targets.filter((t) => t.nextAt > later).map((t) => t.nextAt - later);
    this.schedule(Math.min(this.opts.intervalMs, ...retries));
  }

  /** How many more bootstrap peers to connect to. */
  private wanted(): number {
    if (this.libp2p.getConnections().length >= this.opts.enough) return 0;
    const connected = this.targets.filter((t) => this.connected(t)).length;
    return Math.max(0, Math.min(this.opts.keep, this.targets.length) - connected);
  }

  private connected(t: Target): boolean {
    return t.peerId !== undefined && this.libp2p.getConnections(t.peerId).length > 0;
  }

  // Never rejects: a failed dial only moves the target's next attempt further out.
  private async dial(t: Target): Promise<void> {
    try {
      const conn = await this.libp2p.dial(t.addr, { signal: AbortSignal.timeout(this.opts.dialTimeoutMs) });
      t.peerId = conn.remotePeer;
      if (t.failures > 0) this.log.info({ addr: t.addr.toString(), failures: t.failures }, 'bootstrap peer reachable again');
      t.failures = 0;
      t.nextAt = 0;
    } catch (err) {
      if (this.stopped) return;
      t.failures++;
      const retryMs = Math.round(retryDelayMs(t.failures, this.opts, this.random));
      const fields = { addr: t.addr.toString(), failures: t.failures, retryMs, err: (err as Error).message };
      if (t.failures === 1) this.log.warn(fields, 'cannot reach bootstrap peer; will keep retrying');
      else this.log.debug(fields, 'bootstrap peer still unreachable');
      t.nextAt = Date.now() + retryMs;
    }
  }
}
