// In-memory twin of Membership on a MemoryMesh: members see each other at once, their data planes at the
// URLs given when they join, and each other's inventories as served.
import { holdersOf, type DataPlane, type Inventory, type Membership } from './membership.js';
import type { MemoryMesh, MemoryRouter } from './memory-router.js';

const served = new WeakMap<MemoryMesh, Map<string, () => Promise<Inventory>>>();
/** Each member's onMember handlers: a member serving its inventory is a member connecting. */
const joinHandlers = new WeakMap<MemoryMesh, Map<string, ((id: string) => void)[]>>();

export class MemoryMembership implements Membership {
  readonly #inventories: Map<string, () => Promise<Inventory>>;
  readonly #joinHandlers: Map<string, ((id: string) => void)[]>;

  /** `dataPlanes`: the data plane URL of each member that has one, by peer id. */
  constructor(mesh: MemoryMesh, private readonly router: MemoryRouter, private readonly dataPlanes: Map<string, string> = new Map()) {
    if (!served.has(mesh)) served.set(mesh, new Map());
    this.#inventories = served.get(mesh)!;
    if (!joinHandlers.has(mesh)) joinHandlers.set(mesh, new Map());
    this.#joinHandlers = joinHandlers.get(mesh)!;
  }

  get self(): string {
    return this.router.id;
  }

  peers() {
    return this.router.peers();
  }

  dataPlaneOf(id: string): DataPlane | undefined {
    const peer = this.router.peers().find((p) => p.id === id);
    const url = this.dataPlanes.get(id);
    return peer && url ? { id, url, rttMs: peer.rttMs } : undefined;
  }

  holders(key: string, signal: AbortSignal): Promise<DataPlane[]> {
    const enough = new AbortController();
    return holdersOf(this.router.findProviders(key, AbortSignal.any([signal, enough.signal])), this.self, (id) => this.dataPlaneOf(id), enough);
  }

  async inventories(): Promise<Map<string, Inventory>> {
    const out = new Map<string, Inventory>();
    for (const { id } of this.router.peers()) {
      const inv = await this.inventoryOf(id);
      if (inv) out.set(id, inv);
    }
    return out;
  }

  async inventoryOf(id: string): Promise<Inventory | undefined> {
    return this.router.peers().some((p) => p.id === id) ? this.#inventories.get(id)?.() : undefined;
  }

  onMember(handler: (id: string) => void): void {
    this.#joinHandlers.set(this.self, [...(this.#joinHandlers.get(this.self) ?? []), handler]);
    for (const id of this.#inventories.keys()) if (id !== this.self) handler(id);
  }

  async serveInventory(own: () => Promise<Inventory>): Promise<void> {
    this.#inventories.set(this.self, own);
    for (const [id, handlers] of this.#joinHandlers) if (id !== this.self) for (const handler of handlers) handler(this.self);
  }
}
