// Which peers to ask for a key, in order: the ones a caller names, then what the DHT knows, nearest
// first; peers that sent wrong bytes go last from then on.
import type { DataPlane, HolderDirectory } from '../dht/membership.js';

export interface HolderSources {
  members: Pick<HolderDirectory, 'holders' | 'dataPlaneOf'>;
  /** How long finding holders may take; nobody found by then means "not in the mesh". */
  lookupTimeoutMs: number;
}

export class Holders {
  /** Peers that sent wrong bytes, by id, and how often. */
  readonly #strikes = new Map<string, number>();

  constructor(private readonly sources: HolderSources) {}

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
    const strikes = (p: DataPlane) => this.#strikes.get(p.id) ?? 0;
    const named = (p: DataPlane) => (from.includes(p.id) ? from.indexOf(p.id) : from.length);
    return peers.sort((a, b) => strikes(a) - strikes(b) || named(a) - named(b) || (a.rttMs ?? Infinity) - (b.rttMs ?? Infinity));
  }

  /** A peer sent bytes that do not match their digest. */
  strike(id: string): void {
    this.#strikes.set(id, (this.#strikes.get(id) ?? 0) + 1);
  }
}
