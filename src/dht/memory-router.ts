// In-memory twin of the libp2p router for unit tests and simulations: members of one MemoryMesh see each
// other's keys and events at once (no network, no record TTL: a removed key is gone immediately).
import { decodeEvent, encodeEvent } from './mesh-events.js';
import type { AnnounceChange, GossipEvent, NodeInfo, PeerRef, PeerStatus, Router } from './router.js';

export interface MemberOptions {
  id?: string;
  addrs?: string[];
  info?: NodeInfo;
}

export class MemoryMesh {
  readonly members = new Map<string, MemoryRouter>();
  private counter = 0;

  join(opts: MemberOptions = {}): MemoryRouter {
    const id = opts.id ?? `memory-peer-${++this.counter}`;
    if (this.members.has(id)) throw new Error(`peer ${id} is already a member of this mesh`);
    const router = new MemoryRouter(this, id, opts.addrs ?? [`/memory/${id}`], opts.info);
    this.members.set(id, router);
    return router;
  }
}

export class MemoryRouter implements Router {
  readonly held = new Set<string>();
  private readonly handlers: Array<(event: GossipEvent, from: string) => void> = [];

  constructor(
    private readonly mesh: MemoryMesh,
    readonly id: string,
    readonly addrs: string[],
    readonly info?: NodeInfo,
  ) {}

  announce(change: AnnounceChange): void {
    for (const key of change.remove ?? []) this.held.delete(key);
    for (const key of change.add ?? []) this.held.add(key);
  }

  async *findProviders(key: string, signal?: AbortSignal): AsyncIterable<PeerRef> {
    // Self first, as the libp2p router does.
    const members = [this, ...[...this.mesh.members.values()].filter((m) => m !== this)];
    for (const m of members) {
      if (signal?.aborted) return;
      if (m.held.has(key)) yield { id: m.id, addrs: [...m.addrs] };
    }
  }

  peers(): PeerStatus[] {
    return [...this.mesh.members.values()]
      .filter((m) => m !== this)
      .map((m) => ({ id: m.id, addrs: [...m.addrs], rttMs: 0, ...(m.info && { info: m.info }) }));
  }

  async publish(event: GossipEvent): Promise<void> {
    if (event.node !== this.id) throw new Error(`cannot publish an event for node ${event.node}: members reject events not signed by the node they name`);
    const { event: copy, error } = decodeEvent(encodeEvent(event)); // what the wire would carry
    if (copy === undefined) throw new Error(`invalid mesh event: ${error ?? 'unknown type'}`);
    for (const m of this.mesh.members.values()) {
      if (m !== this) queueMicrotask(() => m.deliver({ ...copy }, this.id));
    }
  }

  onEvent(handler: (event: GossipEvent, from: string) => void): void {
    this.handlers.push(handler);
  }

  /** Leaves the mesh: its keys and events are gone for the others. */
  async stop(): Promise<void> {
    this.mesh.members.delete(this.id);
  }

  private deliver(event: GossipEvent, from: string): void {
    if (!this.mesh.members.has(this.id)) return;
    for (const handler of this.handlers) handler(event, from);
  }
}
