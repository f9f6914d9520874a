// Which peers to ask for a key, in order: the ones a caller names, then what the DHT knows, nearest
// first; peers that sent wrong bytes go last for an hour after the last time they did. Not for ever: the
// peers of a blob fetched in parts are all struck when it fails, honest ones too, and a disk that once
// returned wrong bytes may have been replaced.
import type { DataPlane, HolderDirectory } from '../dht/membership.js';

export interface HolderSources {
  members: Pick<HolderDirectory, 'holders' | 'dataPlaneOf'>;
  /** How long finding holders may take; nobody found by then means "not in the mesh". */
  lookupTimeoutMs: number;
}

/** How long a peer that sent wrong bytes stays last. */
export const STRIKE_MEMORY_MS = 3_600_000;

export class Holders {
  /** Peers that sent wrong bytes, by id: how often, and when last. */
  readonly #strikes = new Map<string, { count: number; at: number }>();

  constructor(private readonly sources: HolderSources, private readonly now: () => number = Date.now) {}

  /**
   * Holders of a key: those named in `from` first, in that order, then what the DHT knows, nearest
   * first. Named holders are tried alone at first (`namedOnly`): a DHT walk is not worth the wait then.
   */
  async of(key: string, from: string[] = [], namedOnly = false): Promise<DataPlane[]> {
    const { members, lookupTimeoutMs } = this.sources;
    const peers = namedOnly && from.length > 0 ? [] : await members.holders(key, AbortSignal.timeout(lookupTimeoutMs));
    for (const id of from) {
      const known = peers.some((p) => p.id === id) ? undefined : members.dataPlaneOf(id);
      if (known) peers.push(known);
    }
    this.#forget();
    const strikes = (p: DataPlane) => this.#strikes.get(p.id)?.count ?? 0;
    const named = (p: DataPlane) => (from.includes(p.id) ? from.indexOf(p.id) : from.length);
    return peers.sort((a, b) => strikes(a) - strikes(b) || named(a) - named(b) || (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity));
  }

  /** A peer sent bytes that do not match their digest. */
  strike(id: string): void {
    this.#forget();
    this.#strikes.set(id, { count: (this.#strikes.get(id)?.count ?? 0) + 1, at: this.now() });
  }

  #forget(): void {
    const since = this.now() - STRIKE_MEMORY_MS;
    for (const [id, strike] of this.#strikes) if (strike.at < since) this.#strikes.delete(id);
  }
}
