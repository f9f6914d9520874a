// Membership on libp2p: peers and their node info from the router, data planes at the address of the
// connection to each member, holders from DHT lookups, inventories over /layermesh/inventory/1.0.0.
import type { Connection, PeerId } from '@libp2p/interface';
import { peerIdFromString } from '@libp2p/peer-id';
import type { Logger } from 'pino';
import { askJson, serveJson } from './json-protocol.js';
import type { MeshLibp2p } from './libp2p-node.js';
import { dataPlaneUrl, holdersOf, type DataPlane, type Inventory, type Membership } from './membership.js';
import type { Router } from './router.js';
import { isTagPush } from '../oci/tag-push.js';
import { LogRateLimiter } from '../util/log-rate-limiter.js';

export const INVENTORY_PROTOCOL = '/layermesh/inventory/1.0.0';
const INVENTORY_MAX_BYTES = 16 << 20;
const INVENTORY_TIMEOUT_MS = 5_000;

/** The IP of a multiaddr (`/ip4/10.0.0.2/tcp/4001/...`), bracketed for URLs when v6. */
function ipOf(multiaddr: string): string | undefined {
  const m = /^\/ip([46])\/([^/]+)\//.exec(multiaddr);
  return m ? (m[1] === '6' ? `[${m[2]}]` : m[2]) : undefined;
}

function isInventory(v: unknown): v is Inventory {
  const i = v as Inventory;
  return typeof i?.name === 'string' && Number.isInteger(i.keys) && Array.isArray(i.images)
    && i.images.every((x) => typeof x?.name === 'string' && typeof x?.digest === 'string' && (x.push === undefined || isTagPush(x.push)) && (x.replicate === undefined || typeof x.replicate === 'string'))
    && (i.fetching === undefined || (Array.isArray(i.fetching) && i.fetching.every((f) =>
      typeof f?.image === 'string' && typeof f?.digest === 'string' && Number.isSafeInteger(f.bytes) && Number.isSafeInteger(f.total))))
    && (i.disk === undefined || (typeof i.disk === 'object' && i.disk !== null && Object.values(i.disk).every((n) => Number.isSafeInteger(n))));
}

/** `plaintext`: members' data planes are reached in plain HTTP (--peer-plaintext), else over TLS. */
export function libp2pMembership(libp2p: MeshLibp2p, router: Router, log: Logger, plaintext: boolean): Membership {
  const dataPlaneOf = (id: string): DataPlane | undefined => {
    const peer = router.peers().find((p) => p.id === id);
    if (!peer?.info?.dataPlanePort) return undefined;
    // The address this node reaches the peer at (its connection), not whatever it listens on.
    const conn = libp2p.getConnections().find((c) => c.remotePeer.toString() === id);
    const ip = ipOf(conn?.remoteAddr.toString() ?? '') ?? peer.addrs.map(ipOf).find(Boolean);
    return ip ? { id, url: dataPlaneUrl(ip, peer.info.dataPlanePort, plaintext), rttMs: peer.rttMs } : undefined;
  };

  // A member that does not answer is asked again at every survey (a status page's every second): a line a minute.
  const silent = new LogRateLimiter();
  const inventoryOf = async (peer: PeerId, signal: AbortSignal): Promise<Inventory | undefined> => {
    try {
      const inv = await askJson(libp2p, peer, INVENTORY_PROTOCOL, { signal, maxBytes: INVENTORY_MAX_BYTES });
      if (!isInventory(inv)) throw new Error('not an inventory');
      return inv;
    } catch (err) {
      const admitted = silent.admit(peer.toString());
      if (admitted) log.warn({ peer: peer.toString(), err: (err as Error).message, suppressed: admitted.suppressed + admitted.suppressedOthers }, 'peer did not give its inventory');
      return undefined;
    }
  };

  return {
    self: router.id,
    peers: () => router.peers(),
    dataPlaneOf,
    holders: (key, signal) => {
      const enough = new AbortController();
      return holdersOf(router.findProviders(key, AbortSignal.any([signal, enough.signal])), router.id, dataPlaneOf, enough);
    },
    inventories: async () => {
      const signal = AbortSignal.timeout(INVENTORY_TIMEOUT_MS);
      const out = new Map<string, Inventory>();
      await Promise.all(libp2p.getPeers().map(async (peer) => {
        const inv = await inventoryOf(peer, signal);
        if (inv) out.set(peer.toString(), inv);
      }));
      return out;
    },
    inventoryOf: (id) => inventoryOf(peerIdFromString(id), AbortSignal.timeout(INVENTORY_TIMEOUT_MS)),
    onMember: (handler) => {
      // Once per connection: identify comes again at every identify-push (a member's new address or protocol:
      // meshd's start registers several), and a member reported again is asked for its inventory again.
      const reported = new WeakSet<Connection>();
      libp2p.addEventListener('peer:identify', ({ detail }) => {
        if (!detail.protocols.includes(INVENTORY_PROTOCOL) || reported.has(detail.connection)) return;
        reported.add(detail.connection);
        handler(detail.peerId.toString());
      });
      // Connected already: reported now if they serve inventories; the others (a member still starting) are
      // reported by the identify that first lists it.
      for (const peer of libp2p.getPeers()) {
        libp2p.peerStore.get(peer).then((known) => {
          const fresh = libp2p.getConnections(peer).filter((connection) => !reported.has(connection));
          if (!known.protocols.includes(INVENTORY_PROTOCOL) || fresh.length === 0) return;
          for (const connection of fresh) reported.add(connection);
          handler(peer.toString());
        }, (err: unknown) => log.debug({ peer: peer.toString(), err: (err as Error).message }, 'a connected peer is not in the peer store; its identify reports it'));
      }
    },
    serveInventory: (own) => serveJson(libp2p, INVENTORY_PROTOCOL, own),
  };
}
