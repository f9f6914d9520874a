// Keeps the node connected to its static bootstrap peers. libp2p 3 dials nothing by itself after start, and
// its reconnect queue gives up after a few tries, so a bootstrap peer that restarts (or boots after us)
// would otherwise stay unreachable until some other peer introduced it again.
import { multiaddr, type Multiaddr } from '@multiformats/multiaddr';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Libp2p } from '@libp2p/interface';
import type { Logger } from 'pino';

export interface BootstrapDialerOptions {
  /** How often to look for disconnected bootstrap peers, and the first retry delay after a failure. */
  intervalMs: number;
  /** Upper bound of the doubling retry delay. */
  maxDelayMs: number;
}

interface Target {
  addr: Multiaddr;
  /** From the address's /p2p/ part, or learned from the first successful dial. */
  peerId?: string;
  delayMs: number;
  nextAt: number;
  failures: number;
}

export class BootstrapDialer {
  private readonly targets: Target[];
  private timer?: NodeJS.Timeout;
  private stopped = false;

  constructor(
    private readonly libp2p: Libp2p,
    addrs: readonly string[],
    private readonly log: Logger,
    private readonly opts: BootstrapDialerOptions,
  ) {
    const self = libp2p.peerId.toString();
    this.targets = addrs
      .map((a) => {
        const addr = multiaddr(a);
        const peerId = addr.getComponents().find((c) => c.name === 'p2p')?.value;
        return { addr, peerId, delayMs: opts.intervalMs, nextAt: 0, failures: 0 };
      })
      .filter((t) => t.peerId !== self); // one fleet-wide list may name this node too
  }

  start(): void {
    if (this.targets.length > 0) this.schedule(0);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => void this.tick(), delayMs);
    this.timer.unref();
  }

  private async tick(): Promise<void> {
    const now = Date.now();
    const due = this.targets.filter((t) => t.nextAt <= now && !this.connected(t));
    await Promise.all(due.map((t) => this.dial(t)));
    this.schedule(this.opts.intervalMs);
  }

  private connected(t: Target): boolean {
    return t.peerId !== undefined && this.libp2p.getConnections(peerIdFromString(t.peerId)).length > 0;
  }

  // Never rejects: a failed dial only moves the target's next attempt further out.
  private async dial(t: Target): Promise<void> {
    try {
      const conn = await this.libp2p.dial(t.addr, { signal: AbortSignal.timeout(Math.max(5_000, this.opts.intervalMs)) });
      t.peerId = conn.remotePeer.toString();
      if (t.failures > 0) this.log.info({ addr: t.addr.toString(), failures: t.failures }, 'bootstrap peer reachable again');
      t.failures = 0;
      t.delayMs = this.opts.intervalMs;
      t.nextAt = 0;
    } catch (err) {
      if (this.stopped) return;
      t.failures++;
      const fields = { addr: t.addr.toString(), failures: t.failures, retryMs: t.delayMs, err: (err as Error).message };
      if (t.failures === 1) this.log.warn(fields, 'cannot reach bootstrap peer; will keep retrying');
      else this.log.debug(fields, 'bootstrap peer still unreachable');
      t.nextAt = Date.now() + t.delayMs;
      t.delayMs = Math.min(t.delayMs * 2, this.opts.maxDelayMs);
    }
  }
}
