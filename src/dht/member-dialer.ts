// Dials members of the roster (roster.ts): those heard of, while this node has room under its connection cap,
// and those whose connection was lost, to check on them.
import { peerIdFromString } from '@libp2p/peer-id';
import { CODE_P2P, multiaddr } from '@multiformats/multiaddr';
import type { Logger } from 'pino';
import type { MeshLibp2p } from './libp2p-node.js';

/** A member's announced addresses, each ending in its id: the peer store may hold none for a peer that only ever dialed in. */
const dialTargets = (id: string, addrs: string[]) => addrs.map((a) => multiaddr(a).decapsulateCode(CODE_P2P).encapsulate(`/p2p/${id}`));

export class MemberDialer {
  /** Dials under way for room under the cap: they count against it, or a node joining dials every member it is told of. */
  readonly #dialing = new Set<string>();

  constructor(
    private readonly libp2p: Pick<MeshLibp2p, 'dial' | 'getConnections'>,
    private readonly opts: { maxConnections: number; timeoutMs: number; shutdown: AbortSignal; log: Logger },
  ) {}

  /** Dials a member heard of while this node has room under its cap, counting the dials under way. */
  connect(id: string, addrs: string[]): void {
    const { maxConnections, shutdown, log } = this.opts;
    if (this.libp2p.getConnections().length + this.#dialing.size >= maxConnections || shutdown.aborted || this.#dialing.has(id)) return;
    if (this.libp2p.getConnections(peerIdFromString(id)).length > 0) return;
    this.#dialing.add(id);
    this.dial(id, addrs)
      .catch((err: Error) => log.debug({ peer: id, err: err.message }, 'cannot dial a member heard of'))
      .finally(() => this.#dialing.delete(id));
  }

  /** One dial of a member at the addresses it announced, within the timeout. */
  async dial(id: string, addrs: string[]): Promise<void> {
    await this.libp2p.dial(dialTargets(id, addrs), { signal: AbortSignal.any([this.opts.shutdown, AbortSignal.timeout(this.opts.timeoutMs)]) });
  }
}
