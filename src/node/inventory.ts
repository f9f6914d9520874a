// What each node holds, asked of every connected member over /layermesh/inventory/1.0.0:
// the images behind `meshctl ls --mesh` and the key counts of `meshctl peers`.
import type { PeerId } from '@libp2p/interface';
import type { Logger } from 'pino';
import type { Store } from '../store/store.js';
import type { ImageEntry, ImageFetch } from '../api/admin-types.js';
import { askJson, serveJson } from '../dht/json-protocol.js';
import type { MeshLibp2p } from '../dht/libp2p-node.js';

export const INVENTORY_PROTOCOL = '/layermesh/inventory/1.0.0';
const MAX_BYTES = 16 << 20;
const TIMEOUT_MS = 5_000;

export interface Inventory {
  name: string;
  /** Keys this node announces. */
  keys: number;
  images: ImageEntry[];
  /** Absent from nodes of older versions. */
  fetching?: ImageFetch[];
}

/** Tagged images of the store (records by digest only keep untagged manifests alive). */
export async function localImages(store: Store): Promise<ImageEntry[]> {
  return (await store.images.list()).filter((i) => !i.name.includes('@')).map((i) => ({ name: i.name, digest: i.target.digest }));
}

export async function serveInventory(libp2p: MeshLibp2p, own: () => Promise<Inventory>): Promise<void> {
  await serveJson(libp2p, INVENTORY_PROTOCOL, own);
}

function isInventory(v: unknown): v is Inventory {
  const i = v as Inventory;
  return typeof i?.name === 'string' && Number.isInteger(i.keys) && Array.isArray(i.images)
    && i.images.every((x) => typeof x?.name === 'string' && typeof x?.digest === 'string')
    && (i.fetching === undefined || (Array.isArray(i.fetching) && i.fetching.every((f) =>
      typeof f?.image === 'string' && typeof f?.digest === 'string' && Number.isSafeInteger(f.bytes) && Number.isSafeInteger(f.total))));
}

/** Every connected member's inventory; members that do not answer in time are left out (and logged). */
export async function gatherInventories(libp2p: MeshLibp2p, log: Logger): Promise<Map<string, Inventory>> {
  const signal = AbortSignal.timeout(TIMEOUT_MS);
  const out = new Map<string, Inventory>();
  await Promise.all(libp2p.getPeers().map(async (peer: PeerId) => {
    try {
      const inv = await askJson(libp2p, peer, INVENTORY_PROTOCOL, { signal, maxBytes: MAX_BYTES });
      if (!isInventory(inv)) throw new Error('not an inventory');
      out.set(peer.toString(), inv);
    } catch (err) {
      log.warn({ peer: peer.toString(), err: (err as Error).message }, 'peer did not give its inventory');
    }
  }));
  return out;
}
