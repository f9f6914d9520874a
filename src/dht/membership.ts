// What a node knows of the fleet's members: who is connected, where their data planes are, who holds a
// key, and what each holds. One face, on libp2p (libp2p-membership.ts) and in memory (memory-membership.ts).
import type { DiskTotals, ImageEntry, ImageFetch } from '../api/admin-types.js';
import type { PeerStatus } from './router.js';

/** A member's data plane, at the address this node reaches it. */
export interface DataPlane {
  id: string;
  /** Base URL of the member's peer data plane. */
  url: string;
  rttMs?: number;
}

/** A member's data plane URL, the one place that says how it is reached: https unless the fleet runs in plaintext. */
export function dataPlaneUrl(host: string, port: number, plaintext: boolean): string {
  return `${plaintext ? 'http' : 'https'}://${host}:${port}`;
}

/** What a member holds, as it answers an inventory request. */
export interface Inventory {
  name: string;
  /** Keys this node announces. */
  keys: number;
  images: ImageEntry[];
  /** Absent from nodes of older versions. */
  fetching?: ImageFetch[];
  /** Bytes held per df category; absent from nodes of older versions. */
  disk?: DiskTotals;
}

export interface Membership {
  /** This node's peer id. */
  readonly self: string;
  /** The members this node knows of: connected ones with what they told of themselves and their round-trip time, then those only heard of (`connected: false`). */
  peers(): PeerStatus[];
  /** A connected member's data plane. */
  dataPlaneOf(id: string): DataPlane | undefined;
  /** Members other than this node that hold a key, as data planes. */
  holders(key: string, signal: AbortSignal): Promise<DataPlane[]>;
  /** Every connected member's inventory, by peer id; members that do not answer in time are left out. */
  inventories(): Promise<Map<string, Inventory>>;
  /** One connected member's inventory; undefined when it does not answer in time. */
  inventoryOf(id: string): Promise<Inventory | undefined>;
  /** Calls `handler` with the peer id of each member connected now, and of each that connects later. */
  onMember(handler: (id: string) => void): void;
  /** Answers members' inventory requests with `own`. */
  serveInventory(own: () => Promise<Inventory>): Promise<void>;
}

/** What a fetch needs to know of the members: who this node is, who holds a key, where a member's data plane is. */
export type HolderDirectory = Pick<Membership, 'self' | 'holders' | 'dataPlaneOf'>;

/** Once one holder is known, others found within this long are welcome; a full DHT walk is not worth the wait. */
export const HOLDER_GRACE_MS = 50;

/** The data planes of a lookup's providers, this node and members without a data plane left out. */
export async function holdersOf(
  providers: AsyncIterable<{ id: string }>, self: string, dataPlaneOf: (id: string) => DataPlane | undefined, enough: AbortController,
): Promise<DataPlane[]> {
  const found: DataPlane[] = [];
  let grace: NodeJS.Timeout | undefined;
  for await (const provider of providers) {
    if (provider.id === self || found.some((f) => f.id === provider.id)) continue;
    const plane = dataPlaneOf(provider.id);
    if (!plane) continue;
    found.push(plane);
    grace ??= setTimeout(() => enough.abort(), HOLDER_GRACE_MS);
  }
  clearTimeout(grace);
  return found;
}
